"""A tiny Llama-architecture causal LM with a locally trained tokenizer, built offline and deterministically.

The directory it writes looks like a hub checkpoint (``config.json``, ``generation_config.json``,
``model.safetensors``, ``tokenizer.json``, ``tokenizer_config.json``, ``chat_template.jinja``), so
``AutoTokenizer`` / ``AutoModelForCausalLM.from_pretrained`` load it through the same code path as a real
chat model. The weights are random (fixed seed): the model knows nothing, which is what an offline default
can honestly offer; fine-tuning it still shows the loss falling on the training data.
"""

from __future__ import annotations

import json
from pathlib import Path

# Dimensions are multiples of 64: bitsandbytes quantizes NF4 weights in blocks of 64 values.
_HIDDEN = 64
_INTERMEDIATE = 128
_LAYERS = 2
_HEADS = 4
_MAX_POSITIONS = 512
# Soft limit: the BPE trainer stops earlier when the small corpus has no more pairs to merge.
_BPE_VOCAB_SIZE = 1536
_MIN_PAIR_FREQUENCY = 2

BOS_TOKEN = "<|bos|>"
EOS_TOKEN = "<|eos|>"
PAD_TOKEN = "<|pad|>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")
END_OF_TURN = "<|end|>"
MARKER_FILE = "tiny_lm.json"

# Each turn starts with its role token; assistant turns end with EOS, so generation stops after the
# answer. Training does not need the {% generation %} markers: assets/train/tokenize.py finds assistant
# tokens by rendering turn by turn, so templates without markers (most real ones) work. The markers make
# transformers' return_assistant_tokens_mask (and TRL's assistant_only_loss) work on this model too, and
# the tests use that mask as an independent check of our masking.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|assistant|>\\n' }}{% generation %}{{ message['content'] }}{{ eos_token }}{% endgeneration %}"
    "{{ '\\n' }}"
    "{% else %}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] + '<|end|>\\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)

# Short instruction-style sentences in several languages, enough for BPE to learn common words and to
# cover each script's letters. Bytes outside it still encode: the tokenizer is byte-level.
_CORPUS = (
    "Summarize the paragraph below in one sentence.",
    "How can I sort a dictionary by its values in Python?",
    "Write a haiku about autumn leaves falling in the park.",
    "What is the tallest mountain in Africa?",
    "Explain the difference between a virus and a bacterium.",
    "List three tips for writing a clear email to a customer.",
    "The answer is forty-two, as the example shows.",
    "Sure! Here is a short answer to your question.",
    "I am not sure, but the evidence suggests otherwise.",
    "The function returns the sum of all even numbers in the list.",
    "Fasse den Text unten in einem Satz zusammen.",
    "Wie viele Einwohner hat die Stadt München ungefähr?",
    "Schreibe eine kurze Antwort auf die Frage des Kunden.",
    "Der Zug fährt um acht Uhr vom Hauptbahnhof ab.",
    "Résume le texte ci-dessous en une phrase.",
    "Quelle est la différence entre le climat et la météo ?",
    "Le musée ouvre ses portes à neuf heures du matin.",
    "Resume el texto siguiente en una sola frase.",
    "¿Cuál es el río más largo de América del Sur?",
    "La biblioteca está cerrada los domingos por la tarde.",
    "Riassumi il testo seguente in una frase.",
    "Qual é a capital do Brasil e quantos habitantes tem?",
    "Vat de tekst hieronder samen in één zin.",
    "Объясни, почему небо голубое.",
    "请用一句话总结下面的段落。",
    "次の文章を一文で要約してください。",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 2024 3.14 -7 50%",
    "Code: def add(a, b):\n    return a + b\n\nprint(add(2, 3))",
    "Punctuation: ( ) [ ] { } < > ' \" ` ~ ! @ # $ ^ & * _ = + | \\ / ; : , . ?",
)


def _train_tokenizer() -> object:
    """A byte-level BPE tokenizer trained on the built-in corpus (deterministic for a fixed corpus)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    special = [PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, END_OF_TURN, *ROLE_TOKENS]
    trainer = trainers.BpeTrainer(
        vocab_size=_BPE_VOCAB_SIZE,
        min_frequency=_MIN_PAIR_FREQUENCY,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Repeating the corpus lets pairs that occur once in it pass the minimum frequency.
    tokenizer.train_from_iterator(list(_CORPUS) * _MIN_PAIR_FREQUENCY, trainer=trainer)
    return tokenizer


def build_tiny_causal_lm(out_dir: Path, *, seed: int) -> Path:
    """Write a tiny random-weight Llama chat model and its tokenizer to ``out_dir``; return ``out_dir``.

    The same seed gives byte-identical files. ``out_dir`` is created if needed; files in it are overwritten.
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=_train_tokenizer(),
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        additional_special_tokens=[END_OF_TURN, *ROLE_TOKENS],
        chat_template=CHAT_TEMPLATE,
        model_max_length=_MAX_POSITIONS,
    )
    # Round the embedding rows up to a multiple of 64, as real checkpoints do for efficient kernels.
    vocab_size = -(-len(tokenizer) // 64) * 64
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=_HIDDEN,
        intermediate_size=_INTERMEDIATE,
        num_hidden_layers=_LAYERS,
        num_attention_heads=_HEADS,
        num_key_value_heads=_HEADS,
        max_position_embeddings=_MAX_POSITIONS,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    marker = {"builder": "tiny_lm", "seed": seed, "vocab_size": vocab_size}
    (out_dir / MARKER_FILE).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return out_dir
