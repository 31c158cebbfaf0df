"""Library mutation tests for Chapters 1-4 (bpe, tokenizer_hf, data, attention, position, model,
hf): each plausible bug, applied to a copy of gptlib, must make the named fast unit tests fail."""
from libmutation import LibMutant, library_mutant_tests

M, H, A, P = "gptlib/model.py", "gptlib/hf.py", "gptlib/attention.py", "gptlib/position.py"
D, B, TH = "gptlib/data.py", "gptlib/bpe.py", "gptlib/tokenizer_hf.py"
EVAL = "tests/test_model.py::test_eval_mode_equals_the_dropout_free_model"
SYNC = "tests/test_model.py::test_ids_are_range_checked_on_cpu_and_off_cpu_only_when_asked"

MUTANTS = [
    # dropout at evaluation: eval-mode outputs are compared with a dropout-free twin, not with
    # themselves
    LibMutant(what="residual dropout rescales by 1/(1-p) at eval", file=M,
              old="return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))",
              new="return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))"
                  " / (1 - self.dropout.p if not self.training else 1)",
              tests=[EVAL], k="learned and fused"),
    LibMutant(what="attention dropout acts at eval", file=A,
              old="p = self.attn_dropout.p if self.training else 0.0",
                  new="p = self.attn_dropout.p",
              tests=[EVAL], k="learned"),
    LibMutant(what="embedding dropout acts at eval", file=M,
              old="x = self.transformer.drop(x)",
              new="x = torch.nn.functional.dropout(x, self.config.dropout, training=True)",
              tests=[EVAL], k="rope and fused"),
    # input checks: values read only where that costs no host-device sync
    LibMutant(what="token ids read (a sync) on every device", file=M,
              old='if (idx.device.type == "cpu" or self.check_ids) and not '
                  'torch.compiler.is_compiling():',
              new="if not torch.compiler.is_compiling():", tests=[SYNC]),
    LibMutant(what="positions read (a sync) on every device", file=P,
              old='if pos.numel() == 0 or pos.device.type != "cpu" or '
                  'torch.compiler.is_compiling():',
              new="if pos.numel() == 0 or torch.compiler.is_compiling():", tests=[SYNC]),
    LibMutant(what="the id equal to vocab_size passes the range check", file=M,
              old="if lo < 0 or hi >= cfg.vocab_size:", new="if lo < 0 or hi > cfg.vocab_size:",
              tests=["tests/test_model.py::test_token_ids_out_of_range_are_a_clear_error"]),
    # windows: targets one token after the inputs, up to the last token
    LibMutant(what="targets not shifted by one token", file=D,
              old="return batch[:, :-1], batch[:, 1:]", new="return batch[:, :-1], batch[:, :-1]",
              tests=["tests/test_data.py::test_windows_cut_x_and_y_one_token_apart_from_any_container"]),
    LibMutant(what="the last window start is refused", file=D,
              old="last = len(tokens) - block_size - 1", new="last = len(tokens) - block_size - 2",
              tests=["tests/test_data.py::test_windows_cut_x_and_y_one_token_apart_from_any_container"]),
    # attention and positions
    LibMutant(what="causal mask lets a query see the future", file=A,
              old="return torch.ones(T, T, dtype=torch.bool, device=device).tril()",
              new="return torch.ones(T, T, dtype=torch.bool, device=device).triu()",
              tests=["tests/test_attention.py::test_causal_mask_is_lower_triangular_bool"]),
    LibMutant(what="scores scaled by 1/d instead of 1/sqrt(d)", file=A,
              old="/ math.sqrt(q.size(-1))", new="/ q.size(-1)",
              tests=["tests/test_attention.py::test_sdpa_is_scaled_by_sqrt_d"]),
    LibMutant(what="RoPE rotates clockwise", file=P,
              old="rotated = torch.stack((x_even * cos - x_odd * sin,",
              new="rotated = torch.stack((x_even * cos + x_odd * sin,",
              tests=["tests/test_position.py::test_rope_rotates_interleaved_pairs_counter_clockwise"]),
    # tokenizers
    LibMutant(what="BPE applies the latest merge first", file=B,
              old='key=lambda p: merges.get(p, float("inf")))',
              new='key=lambda p: -merges.get(p, -1))',
              tests=["tests/test_tokenizer.py::test_building_blocks"]),
    LibMutant(what="merges.txt not in rank order", file=TH,
              old="ranked = sorted(tokenizer.merges.items(), key=lambda kv: kv[1])",
              new="ranked = sorted(tokenizer.merges.items())",
              tests=["tests/test_tokenizer_hf.py::test_our_from_pretrained_reads_the_files_back"],
                  k="course"),
    # Hugging Face checkpoints
    LibMutant(what="save_pretrained forgets the Conv1D transpose", file=H,
              old="tensors[k] = (v.t() if k.endswith(CONV1D_WEIGHTS) else "
                  "v).detach().to(\"cpu\").contiguous()",
              new="tensors[k] = v.detach().to(\"cpu\").contiguous()",
              tests=["tests/test_hf_compat.py::test_saved_model_loads_in_transformers_with_equal_logits"]),
]

test_library_mutant = library_mutant_tests(MUTANTS)
