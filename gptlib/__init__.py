"""gptlib: the code of the course book "build a GPT from scratch".

Every module except this file and `gptlib.checks` is written by `make export` from the chapters:
    profile      (Chapter 0)  run profiles and the hardware policy: device, dtype, autocast, compile
    util         (Chapter 0)  integer guards and atomic writes every chapter uses
    bpe          (Chapter 1)  byte-level BPE: pair counts, merges, training, encoding a chunk
    tokenizer    (Chapter 1)  BPETokenizer, GPT-2's tokenizer offline, Tokenizer protocol, a loader
    tokenizer_hf (Chapter 1)  tokenizers in Hugging Face's GPT-2 format (vocab.json, merges.txt)
    data         (Chapter 1)  the Shakespeare corpus, splits by play, token windows and shards
    attention    (Chapter 2)  scaled dot-product and multi-head attention
    position     (Chapter 3)  learned, sinusoidal, RoPE and ALiBi positions
    layers       (Chapter 4)  LayerNorm and GELU
    model        (Chapter 4)  GPTConfig, GPT, the plain loss, parameter and FLOP counts
    hf           (Chapter 4)  Hugging Face GPT-2 checkpoints: load and save
    ngram        (Chapter 5)  unigram, bigram and smoothed trigram baselines (add-k, Kneser-Ney)
    loss         (Chapter 5)  cross-entropy routes, evaluation loss, bits per character
    optim        (Chapter 5)  AdamW parameter groups, warmup + cosine schedule
    pretrain     (Chapter 5)  Task, the language-modelling task, token loading and sampling
    trainconfig  (Chapter 5)  TrainConfig and the CLI generated from its fields
    checkpoint   (Chapter 5)  checkpoints: save, verify, load, resume state
    runfolder    (Chapter 5)  a run's folder: log, final model in Hugging Face format
    train        (Chapter 5)  the Trainer over Tasks; `python -m gptlib.train` (torchrun, resume)
    lora         (Chapter 6)  LoRA layers: add, merge, unmerge, remove
    lora_io      (Chapter 6)  LoRA adapters in peft's format: save and load
    classify     (Chapter 6)  a classification head on the last token, genre data
    stats        (Chapter 6)  Wilson intervals, paired bootstrap, McNemar
    sft          (Chapter 6)  instruction tuning: template, loss mask, batches, option scores
    dpo          (Chapter 6)  direct preference optimisation: pairs, loss, task
    sampling     (Chapter 7)  logits processors: temperature, top-k, top-p, repetition penalty
    kvcache      (Chapter 7)  the KV cache
    generate     (Chapter 7)  greedy, sampling and beam search (transformers' semantics)
    stream       (Chapter 7)  text in, streamed text out
    chat         (Chapter 7)  chat templates and `python -m gptlib.chat MODEL_DIR`
"""
import os
from pathlib import Path

__version__ = "0.1.0"

#: the course's data folder (the corpus, GPT-2's BPE ranks); override with the GPTLIB_DATA variable
DATA_DIR = Path(os.environ.get("GPTLIB_DATA", Path(__file__).resolve().parent.parent / "data"))
