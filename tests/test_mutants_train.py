"""Library mutation tests for Chapter 5's modules (issue 18): each plausible bug of a class the
suite promises to catch (it learns, optimizer and parameter groups, schedule, clipping,
accumulation, resume state, data windows, hardware policy) makes its fast unit tests fail."""
from libmutation import LibMutant, library_mutant_tests

L = "tests/test_trainer_learns.py::"
TT = "tests/test_train.py::"
P = "tests/test_profile.py::"
GROUPS = L + "test_the_optimizer_decays_two_dimensional_weights_only_and_skips_frozen_ones"
RESUME = L + "test_resume_restores_weights_optimizer_data_position_and_rngs"
WINDOWS = L + "test_lm_task_batches_are_shifted_windows_and_loss_is_the_mean_cross_entropy"

MUTANTS = [
    LibMutant(what="optimizer never "
                   "steps", file="gptlib/train.py", old="self.optimizer.step()", new="pass",
              tests=[L + "test_a_few_steps_on_a_fixed_batch_lower_the_loss"]),
    LibMutant(what="weight decay on every parameter", file="gptlib/optim.py",
              old="(decay if p.dim() >= 2 else no_decay).append(p)", new="decay.append(p)",
              tests=[GROUPS]),
    LibMutant(what="frozen parameters optimized", file="gptlib/optim.py", old="if p.requires_grad:",
              new="if True:",
              tests=[GROUPS]),
    LibMutant(what="betas ignored", file="gptlib/optim.py", old="betas=betas", new="betas=(0.9, "
                                                                                   "0.999)",
              tests=[L + "test_each_step_uses_the_scheduled_learning_rate_and_betas"]),
    LibMutant(what="schedule never applied", file="gptlib/train.py", old='group["lr"] = lr',
              new='group["lr"] = cfg.lr',
              tests=[L + "test_each_step_uses_the_scheduled_learning_rate_and_betas"]),
    LibMutant(what="warmup off by one", file="gptlib/optim.py", old="max_lr * (step + 1) / warmup",
              new="max_lr * step / warmup", tests=[TT + "test_lr_schedule_shape"]),
    LibMutant(what="clipping never applied", file="gptlib/train.py",
              old='clip = cfg.grad_clip if cfg.grad_clip > 0 else '
                  'float("inf")', new='clip = float("inf")',
              tests=[L + "test_the_optimizer_sees_gradients_clipped_to_grad_clip"]),
    LibMutant(what="accumulated loss not divided", file="gptlib/train.py",
              old="(loss / cfg.grad_accum).backward()", new="loss.backward()",
              tests=[L + "test_accumulation_equals_one_big_batch"]),
    LibMutant(what="gradients never zeroed", file="gptlib/train.py",
              old="self.optimizer.zero_grad(set_to_none=True)", new="pass",
              tests=[RESUME]),
    LibMutant(what="resume forgets the "
                   "RNGs", file="gptlib/train.py", old='set_rng_state(rngs[self.rank]',
              new='(lambda s: None)(rngs[self.rank]',
              tests=[RESUME]),
    LibMutant(what="resume restarts the data", file="gptlib/train.py",
              old='self.step, self.samples_seen = state["step"], state["samples_seen"]',
              new='self.step, self.samples_seen = state["step"], 0',
              tests=[RESUME]),
    LibMutant(what="resume forgets the optimizer state", file="gptlib/checkpoint.py",
              old='optimizer.load_state_dict(torch.load(folder / "optimizer.pt", '
                  'weights_only=True))',
              new="pass", tests=[RESUME]),
    LibMutant(what="data position not advanced", file="gptlib/train.py",
              old="self.samples_seen += cfg.batch_size", new="pass",
              tests=[RESUME]),
    LibMutant(what="epoch is not a permutation", file="gptlib/pretrain.py",
              old="torch.randperm(self.per_epoch, generator=g)",
              new="torch.randint(self.per_epoch, (self.per_epoch,), generator=g)",
              tests=[L + "test_window_sampler_epochs_are_permutations_and_the_shift_moves"]),
    LibMutant(what="targets not "
                   "shifted", file="gptlib/data.py", old="return batch[:, :-1], batch[:, 1:]",
              new="return batch[:, :-1], batch[:, :-1]",
              tests=[WINDOWS]),
    LibMutant(what="peak table matched in dict order", file="gptlib/profile.py",
              old="for key in sorted(PEAK_FLOPS, key=len, "
                  "reverse=True):", new="for key in PEAK_FLOPS:",
              tests=[P + "test_peak_flops_matches_the_most_specific_device_name"]),
]

test_library_mutant = library_mutant_tests(MUTANTS)
