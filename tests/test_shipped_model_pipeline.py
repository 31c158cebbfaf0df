"""The shipped model's documented transformers call works as written, with no generation arguments.

`pipeline("text-generation", model="data/models/shakespeare-4x256")("ROMEO:\\n")` once crashed with
`IndexError: index out of range`: the pipeline's default length (256 new tokens) ran past the
model's 128 positions because nothing in the folder said where it ends. `generation_config.json`
(max_length = n_positions) and `tokenizer_config.json`'s `model_max_length` now do; these tests make
the plain call, offline.
"""

import json

import pytest

import gptlib

transformers = pytest.importorskip("transformers")

SHIPPED = gptlib.DATA_DIR / "models" / "shakespeare-4x256"


@pytest.fixture(scope="module")
def generator():
    return transformers.pipeline("text-generation", model=str(SHIPPED))


def n_positions() -> int:
    return json.loads((SHIPPED / "config.json").read_text())["n_positions"]


def test_the_folder_says_where_the_context_ends():
    gen = json.loads((SHIPPED / "generation_config.json").read_text())
    tok = json.loads((SHIPPED / "tokenizer_config.json").read_text())
    assert gen["max_length"] == n_positions() == tok["model_max_length"]
    assert "max_new_tokens" not in gen, (
        "max_new_tokens would let a long prompt run past the context"
    )


def test_the_documented_call_without_arguments_stays_inside_the_context(generator):
    out = generator("ROMEO:\n")[0]["generated_text"]
    assert out.startswith("ROMEO:\n") and len(out) > len("ROMEO:\n") + 20  # it did generate
    n = len(generator.tokenizer(out)["input_ids"])
    assert n <= n_positions(), f"{n} tokens from a model with {n_positions()} positions"


def test_a_long_prompt_gets_only_the_room_that_is_left(generator):
    prompt = "ROMEO:\nBut soft, what light through yonder window breaks?\n" * 4
    n_prompt = len(generator.tokenizer(prompt)["input_ids"])
    assert n_positions() - 40 < n_prompt < n_positions()
    out = generator(prompt)[0]["generated_text"]
    assert len(generator.tokenizer(out)["input_ids"]) <= n_positions()
