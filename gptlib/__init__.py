"""gptlib: the code of the course book "build a GPT from scratch".

Every module except this file and `gptlib.checks` is written by `make export` from the chapter notebooks:
    profile    (Getting started)  run profiles: device, dtype and model sizes from the hardware
    tokenizer  (Chapter 1)        byte-level BPE from scratch; GPT-2's tokenizer offline
    data       (Chapter 1)        the Shakespeare corpus, splits by play, token windows and shards
    attention  (Chapter 2)        scaled dot-product and multi-head attention
    position   (Chapter 3)        learned, sinusoidal, RoPE and ALiBi positions
    model      (Chapter 4)        GPTConfig, GPT, the plain loss, parameter and FLOP counts
    hf         (Chapter 4)        Hugging Face GPT-2 checkpoints: load and save (GPT.from_pretrained / save_pretrained)
    ngram      (Chapter 5)        unigram, bigram and smoothed trigram baselines (add-k, Kneser-Ney)
    train      (Chapter 5)        TrainConfig, Trainer, `python -m gptlib.train` (torchrun DDP, exact resume)
    finetune   (Chapter 6)        LoRA (peft's adapter format), a classification head, instruction tuning
    generate   (Chapter 7)        decoding strategies (transformers' semantics), streaming, the KV cache
"""
import os
from pathlib import Path

__version__ = "0.1.0"

#: the course's data folder (the corpus, GPT-2's BPE ranks); override with the GPTLIB_DATA variable
DATA_DIR = Path(os.environ.get("GPTLIB_DATA", Path(__file__).resolve().parent.parent / "data"))
