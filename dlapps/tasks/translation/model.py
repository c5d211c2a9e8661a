"""The encoder-decoder Transformer: raw strings in (tokenization inside), next-token logits out.

    source text ─vectorizer─► source ids ─┐
                                          ├─ transformer ─► logits (batch, max_length, vocab)
    target text ─vectorizer─► [start] t1 .. tn [end] ─drop last─► decoder ids ─┘

The vectorizers (subword.vectorizer) are word-level TextVectorization (tokenizer=word) or
WordPiece layers (tokenizer=wordpiece); either way the saved model takes raw strings.

`transformer` is itself a Functional model of token ids -> logits made of two parts,
`encoder` (source ids -> context) and `decoder` ((decoder ids, context, source ids) -> hidden
states) followed by the `logits` projection: decoding runs the encoder once and the decoder once
per generated token. `transformer` uses only keras.ops, so it trains on any Keras backend.
"""

from __future__ import annotations

import dataclasses

import keras
from keras import ops

from dlapps.errors import UserError
from dlapps.layers.transformer import (PaddingMask, PositionalEmbedding, TokenSlice, TransformerDecoderBlock,
                                       TransformerEncoderBlock)
from dlapps.optim import make_optimizer, total_steps
from dlapps.tasks.translation.config import Config
from dlapps.tasks.translation.subword import vectorizer

# What the model is and why its tokenizer was chosen (measured; the model card's notes).
MODEL_NOTES = (
    "Encoder-decoder Transformer (pre-LayerNorm blocks, sinusoidal positions, label-smoothed "
    "cross-entropy, linear warm-up then cosine decay). Tokenization happens inside the model, after the "
    "same standardization for both kinds (punctuation and digits split off, case kept): tokenizer=word is "
    "TextVectorization over the words seen at least min_count times in the training split (others -> "
    "[UNK]); tokenizer=wordpiece is a WordPiece vocabulary of subword_vocab pieces per language learned on "
    "the training split only (tensorflow_text's learner; FastWordpieceTokenizer in the serializable layer "
    "dlapps.layers.wordpiece.WordPieceVectorizer), so unseen words are spelt in pieces "
    "('Skateboardfahrerinnen' -> 'Skateboardfahrer ##innen') and decoding glues the pieces back. Source "
    "and target have separate vocabularies: their embeddings are separate (no weight tying), and a joint "
    "vocabulary would spend output rows on English pieces the decoder never writes. Chosen by measured "
    "BLEU: on Multi30k En->De (29,000 training pairs, the 1,014 validation pairs), with the same reduced "
    "CPU settings for both (d_model 64, 2+2 layers, 4 heads, ff_dim 256, dropout 0.1, label smoothing "
    "0.1, max_length 32, batch 128, 4 epochs, learning rate 0.002 with 200 warm-up steps then cosine, "
    "seed 42; subword_vocab 8000 vs word min_count 2 = 6,258 English / 8,000 German entries), validation "
    "BLEU / chrF were word 17.69 / 40.58 greedy and 20.01 / 41.15 beam 4, wordpiece 19.81 / 42.00 greedy "
    "and 21.39 / 43.00 beam 4 (one seed each; 1,289 s and 1,304 s of training on a shared 2-core CPU: "
    "the cost per step is the same, as both pad to max_length and the output vocabularies are of equal "
    "size). Word level leaves 4.6% of the German validation tokens (2.2% of the English) outside its "
    "vocabulary, i.e. [UNK]; WordPiece spells them, at the price of 11% longer German (4% longer "
    "English) token sequences. So the full "
    "profile uses tokenizer=wordpiece. The committed saved_models/translation/ model is word level: it "
    "was trained (on a GPU) before this comparison. To retrain it with WordPiece on a GPU: "
    "`python -m dlapps.tasks.translation.accelerated export DIR --profile full --data ../shared/data/multi30k`, "
    "`KERAS_BACKEND=jax python -m dlapps.tasks.translation.accelerated fit DIR OUT`, then "
    "`python -m dlapps.tasks.translation.accelerated assemble DIR OUT RUN_DIR --save` (or `dlapps train "
    "translation --profile full --data ../shared/data/multi30k --save` with TensorFlow). Decoding: greedy "
    "or beam search (beam_size), batched, up to max_length tokens; BLEU/chrF by sacrebleu on detokenized "
    "output vs raw references."
)


@keras.saving.register_keras_serializable(package="dlapps")
class MaskedSparseCrossentropy(keras.losses.Loss):
    """Label-smoothed cross-entropy averaged over real target tokens (label id 0 = padding is ignored)."""

    def __init__(self, label_smoothing: float = 0.0, name: str = "masked_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "int32")
        vocab = ops.shape(y_pred)[-1]
        log_probs = ops.log_softmax(ops.cast(y_pred, "float32"), axis=-1)
        targets = ops.one_hot(y_true, vocab, dtype="float32")
        if self.label_smoothing:
            targets = targets * (1.0 - self.label_smoothing) + self.label_smoothing / ops.cast(vocab, "float32")
        per_token = -ops.sum(targets * log_probs, axis=-1)
        mask = ops.cast(ops.not_equal(y_true, 0), "float32")
        # Per-example sums scaled so that the batch mean is the mean over all real tokens.
        batch = ops.cast(ops.shape(y_true)[0], "float32")
        return ops.sum(per_token * mask, axis=-1) * batch / ops.maximum(ops.sum(mask), 1.0)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


@keras.saving.register_keras_serializable(package="dlapps")
def masked_accuracy(y_true, y_pred):
    """Next-token accuracy over real (non-padding) target tokens."""
    y_true = ops.cast(y_true, "int32")
    mask = ops.cast(ops.not_equal(y_true, 0), "float32")
    hits = ops.cast(ops.equal(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), y_true), "float32")
    return ops.sum(hits * mask) / ops.maximum(ops.sum(mask), 1.0)


def hyperparameters(cfg: Config, hp=None) -> Config:
    """`cfg` with the architecture values KerasTuner chose (defaults: the config's own)."""
    if hp is None:
        return cfg
    return dataclasses.replace(
        cfg,
        d_model=hp.Choice("d_model", [64, 128, 256, 512], default=cfg.d_model),
        num_layers=hp.Int("num_layers", 1, 6, default=cfg.num_layers),
        num_heads=hp.Choice("num_heads", [2, 4, 8], default=cfg.num_heads),
        ff_dim=hp.Int("ff_dim", 128, 2048, step=128, default=cfg.ff_dim),
        dropout=hp.Float("dropout", 0.0, 0.4, step=0.05, default=cfg.dropout),
    )


def build_transformer(cfg: Config, source_vocab_size: int, target_vocab_size: int) -> keras.Model:
    """The token-level Transformer: (source ids, decoder ids) -> next-token logits (any backend)."""
    if cfg.d_model % cfg.num_heads:
        raise UserError(f"d_model={cfg.d_model} must be divisible by num_heads={cfg.num_heads}")
    length = cfg.max_length
    # Encoder: source ids -> context vectors.
    source_ids = keras.Input(shape=(None,), dtype="int32", name="source_ids")
    x = PositionalEmbedding(source_vocab_size, length, cfg.d_model, cfg.dropout, name="source_embedding")(source_ids)
    source_mask = PaddingMask(name="source_padding")(source_ids)
    for i in range(cfg.num_layers):
        x = TransformerEncoderBlock(cfg.d_model, cfg.num_heads, cfg.ff_dim, cfg.dropout, name=f"encoder_block_{i}")(
            x, source_mask)
    context = keras.layers.LayerNormalization(epsilon=1e-6, name="encoder_norm")(x)
    encoder = keras.Model(source_ids, context, name="encoder")

    # Decoder: (decoder ids, context, source ids for the padding mask) -> hidden states.
    decoder_ids = keras.Input(shape=(None,), dtype="int32", name="decoder_ids")
    context_in = keras.Input(shape=(None, cfg.d_model), name="context")
    context_ids = keras.Input(shape=(None,), dtype="int32", name="context_ids")
    y = PositionalEmbedding(target_vocab_size, length, cfg.d_model, cfg.dropout, name="target_embedding")(decoder_ids)
    target_mask = PaddingMask(name="target_padding")(decoder_ids)
    context_mask = PaddingMask(name="context_padding")(context_ids)
    for i in range(cfg.num_layers):
        y = TransformerDecoderBlock(cfg.d_model, cfg.num_heads, cfg.ff_dim, cfg.dropout, name=f"decoder_block_{i}")(
            y, context_in, target_mask, context_mask)
    hidden = keras.layers.LayerNormalization(epsilon=1e-6, name="decoder_norm")(y)
    decoder = keras.Model([decoder_ids, context_in, context_ids], hidden, name="decoder")

    projection = keras.layers.Dense(target_vocab_size, dtype="float32", name="logits")
    enc_in = keras.Input(shape=(None,), dtype="int32", name="source_ids")
    dec_in = keras.Input(shape=(None,), dtype="int32", name="decoder_ids")
    logits = projection(decoder([dec_in, encoder(enc_in), enc_in]))
    return keras.Model([enc_in, dec_in], logits, name="transformer")


def compile_model(model: keras.Model, cfg: Config, info: dict, hp=None) -> keras.Model:
    """Compile with the configured optimizer, label-smoothed loss and masked token accuracy.

    With `warmup_steps`, the learning rate rises linearly to `learning_rate`, then follows a
    cosine decay to 0 (lr_schedule=cosine) or stays constant.
    """
    optimizer = make_optimizer(cfg, info, hp)
    if cfg.warmup_steps > 0 and cfg.lr_schedule in ("constant", "cosine"):
        peak = float(keras.ops.convert_to_numpy(optimizer.learning_rate)) if cfg.lr_schedule == "constant" \
            else cfg.learning_rate
        if hp is not None:
            peak = hp.get("learning_rate") if "learning_rate" in hp.values else peak
        total = total_steps(cfg, info)
        warmup = min(cfg.warmup_steps, max(1, total // 3))
        decay = max(1, total - warmup) if cfg.lr_schedule == "cosine" else 10 ** 12
        optimizer.learning_rate = keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps=decay, warmup_target=peak, warmup_steps=warmup,
            alpha=0.0 if cfg.lr_schedule == "cosine" else 1.0)
    model.compile(optimizer=optimizer, loss=MaskedSparseCrossentropy(cfg.label_smoothing),
                  metrics=[masked_accuracy])
    return model


def build_model(cfg: Config, info: dict, hp=None) -> keras.Model:
    """The compiled training model: {"source": text, "target": text} -> next-token logits."""
    cfg = hyperparameters(cfg, hp)
    tokenizer = info.get("tokenizer", "word")  # info.json of models saved before the key existed: word
    source = keras.Input(shape=(), dtype="string", name="source")
    target = keras.Input(shape=(), dtype="string", name="target")
    source_ids = vectorizer(tokenizer, info["source_vocabulary"], cfg.max_length, name="source_vectorizer")(source)
    target_ids = vectorizer(tokenizer, info["target_vocabulary"], cfg.max_length + 1, target=True,
                            name="target_vectorizer")(target)
    decoder_ids = TokenSlice(0, -1, name="decoder_inputs")(target_ids)  # [start] w1 .. wn (no last token)
    transformer = build_transformer(cfg, info["source_vocab_size"], info["target_vocab_size"])
    logits = transformer([source_ids, decoder_ids])
    model = keras.Model({"source": source, "target": target}, logits, name="translator")
    return compile_model(model, cfg, info, hp)
