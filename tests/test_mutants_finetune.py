"""Library mutation tests for Chapter 6's modules: one plausible bug per line, and the fast tests
that must notice it (tests/libmutation.py copies the repository, applies the bug, runs the tests,
expects a failure).

Classes covered: adapters' scaling (LoRA's alpha / r, merge, dropout at eval), preference losses
(DPO's sign, beta, chosen and rejected swapped in the task or in the reference), loss masks (the
prompt mask, the padding's labels), statistics (Wilson, paired bootstrap, McNemar), a classifier
that learns, and the model to fine-tune (the shipped one, or GPT-2 under the GPU profile)."""

from libmutation import LibMutant, library_mutant_tests

LORA_FORMULA = (
    "tests/test_lora.py::"
    "test_a_lora_layer_is_base_plus_alpha_over_r_times_BA_in_eval_train_and_merged"
)
LORA_EVAL = "tests/test_lora.py::test_dropout_only_in_train_and_only_on_the_lora_path"
DPO_BY_HAND = "tests/test_dpo.py::test_dpo_loss_by_hand_away_from_the_reference"
DPO_STEP = "tests/test_dpo.py::test_a_few_dpo_steps_raise_the_chosen_minus_rejected_margin"
DPO_TASK = (
    "tests/test_dpo.py::test_the_dpo_task_starts_at_log2_masks_prompts_and_refuses_long_examples"
)
MASK = "tests/test_sft.py::test_mask_prompt_by_hand"
PADDING = "tests/test_sft.py::test_padding_does_not_change_the_loss"
WILSON = "tests/test_stats.py::test_wilson_interval_against_hand_computed_values"
BOOTSTRAP = "tests/test_stats.py::test_paired_bootstrap_interval_of_an_accuracy_difference"
MCNEMAR = "tests/test_stats.py::test_mcnemar_exact_p_values_by_hand"
CLF_FITS = "tests/test_classify.py::test_training_through_the_task_fits_a_fixed_batch"
CLF_LAST = "tests/test_classify.py::test_logits_equal_the_head_on_the_last_real_state"
BASE_CHOICE = "tests/test_classify.py::test_the_shipped_model_unless_the_gpu_profile_names_gpt2"
GPT2_TOKENIZER = "tests/test_classify.py::test_a_gpt2_checkpoint_loads_with_gpt2_s_tokenizer"

MUTANTS = [
    # adapters' scaling
    LibMutant(
        what="LoRA scaling r / alpha instead of alpha / r",
        file="gptlib/lora.py",
        old="self.scaling = r, alpha, alpha / r",
        new="self.scaling = r, alpha, r / alpha",
        tests=[LORA_FORMULA],
    ),
    LibMutant(
        what="LoRA dropout rescales at eval",
        file="gptlib/lora.py",
        old="self.lora_A(self.lora_dropout(x))",
        new="self.lora_A(self.lora_dropout(x) if self.training else "
        "x / (1 - getattr(self.lora_dropout, 'p', 0.0)))",
        tests=[LORA_FORMULA, LORA_EVAL],
    ),
    LibMutant(
        what="LoRA merge subtracts the update",
        file="gptlib/lora.py",
        old="self.base.weight += self.delta_weight()",
        new="self.base.weight -= self.delta_weight()",
        tests=[LORA_FORMULA],
    ),
    # preference losses
    LibMutant(
        what="DPO loss with chosen and rejected swapped",
        file="gptlib/dpo.py",
        old="-F.logsigmoid(chosen - rejected)",
        new="-F.logsigmoid(rejected - chosen)",
        tests=[DPO_BY_HAND],
    ),
    LibMutant(
        what="DPO loss without beta on the chosen reward",
        file="gptlib/dpo.py",
        old="chosen = beta * (policy_chosen - ref_chosen)",
        new="chosen = policy_chosen - ref_chosen",
        tests=[DPO_BY_HAND],
    ),
    LibMutant(
        what="DPO task swaps chosen and rejected (log 2 at the start all the same)",
        file="gptlib/dpo.py",
        old="dpo_loss(lp[:n], lp[n:], ref[:, 0], ref[:, 1], self.beta)",
        new="dpo_loss(lp[n:], lp[:n], ref[:, 1], ref[:, 0], self.beta)",
        tests=[DPO_STEP],
    ),
    LibMutant(
        what="DPO reference log-probs stored rejected first",
        file="gptlib/dpo.py",
        old="torch.stack([lp[:len(idx)], lp[len(idx):]], 1)",
        new="torch.stack([lp[len(idx):], lp[:len(idx)]], 1)",
        tests=[DPO_TASK],
    ),
    LibMutant(
        what="response log-probs count the prompt's tokens too",
        file="gptlib/dpo.py",
        old="keep = labels != -100",
        new="keep = torch.ones_like(labels, dtype=torch.bool)",
        tests=[DPO_TASK],
    ),
    # loss masks
    LibMutant(
        what="prompt mask covers the first answer token",
        file="gptlib/sft.py",
        old="y[: n_prompt - 1] = ignore_index",
        new="y[: n_prompt] = ignore_index",
        tests=[MASK],
    ),
    LibMutant(
        what="padding's labels are the pad token, not ignored",
        file="gptlib/sft.py",
        old="labels = torch.full((B, T), ignore_index, dtype=torch.int64)",
        new="labels = torch.full((B, T), pad_id, dtype=torch.int64)",
        tests=[PADDING],
    ),
    LibMutant(
        what="option scores count the prompt's positions too",
        file="gptlib/sft.py",
        old="(picked * (y != -100)).sum(-1)",
        new="picked.sum(-1)",
        tests=["tests/test_sft.py::test_option_logprobs_sum_the_option_tokens_only"],
    ),
    # statistics
    LibMutant(
        what="Wilson interval centred on k / n (the Wald centre)",
        file="gptlib/stats.py",
        old="centre = (p + z2 / (2 * n)) / (1 + z2 / n)",
        new="centre = p",
        tests=[WILSON],
    ),
    LibMutant(
        what="paired bootstrap gives a 90% interval for 95%",
        file="gptlib/stats.py",
        old="lo_i = int(math.floor((1 - level) / 2 * (n_boot - 1)))",
        new="lo_i = int(math.floor((1 - level) * (n_boot - 1)))",
        tests=[BOOTSTRAP],
    ),
    LibMutant(
        what="McNemar one-sided p-value",
        file="gptlib/stats.py",
        old="return b, c, min(1.0, 2 * tail)",
        new="return b, c, min(1.0, tail)",
        tests=[MCNEMAR],
    ),
    # a classifier that learns, and reads the right state
    LibMutant(
        what="classifier loss detached: training never moves the model",
        file="gptlib/classify.py",
        old="F.cross_entropy(self.model(*inputs).float(), labels)",
        new="F.cross_entropy(self.model(*inputs).float().detach().requires_grad_(), labels)",
        tests=[CLF_FITS],
    ),
    LibMutant(
        what="classifier reads the first token's state",
        file="gptlib/classify.py",
        old="return h[rows, lengths - 1]",
        new="return h[rows, 0 * lengths]",
        tests=[CLF_LAST],
    ),
    # the model to fine-tune
    LibMutant(
        what="the CPU profile reads GPTLIB_GPT2_DIR (the stored outputs would depend on it)",
        file="gptlib/classify.py",
        old='if profile.name != "gpu" or not folder:',
        new="if not folder:",
        tests=[BASE_CHOICE],
    ),
    LibMutant(
        what="GPT-2's weights with the course tokenizer",
        file="gptlib/classify.py",
        old="BPETokenizer.from_tiktoken(gpt2_tokenizer())",
        new="course_tokenizer()",
        tests=[GPT2_TOKENIZER],
    ),
]

test_library_mutant = library_mutant_tests(MUTANTS)
