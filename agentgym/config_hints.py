"""What to suggest for an unknown config key.

Most unknown keys are one of three things: a name from TRL's ``GRPOConfig`` or
transformers' ``TrainingArguments`` (``save_steps``), a near-synonym of a field
(``warmup.path`` for ``warmup.file``), or a typo (``temprature``). The first two get a
fixed answer from the tables below; a typo gets the one close field name, and a name
that is close to nothing gets no guess at all, since a far guess misleads more than
none. TRL names with an exact counterpart (``learning_rate``) never reach here: the
config maps them (``agentgym.config.TRL_NAMES``).
"""

from __future__ import annotations

import difflib
import re

#: TRL / transformers names -> where that setting lives here: a dotted key, or a sentence
#: when there is no one key.
FOREIGN_KEYS: dict[str, str] = {
    "save_steps": "train.save_every",
    "save_total_limit": "train.keep_checkpoints",
    "eval_steps": "train.eval_every",
    "num_train_epochs": "train.steps",
    "output_dir": "run_dir",
    "model_name_or_path": "model.name",
    "bf16": "train.precision",
    "fp16": "train.precision",
    "torch_dtype": "train.precision",
    "use_vllm": "model.backend",
    "vllm_gpu_memory_utilization": "model.vllm.gpu_memory_utilization",
    "use_peft": "model.lora",
    "lora_r": "model.lora.r",
    "lora_alpha": "model.lora.alpha",
    "lora_dropout": "model.lora.dropout",
    "lora_target_modules": "model.lora.target_modules",
    "adam_beta1": "grpo.betas",
    "adam_beta2": "grpo.betas",
    "ppo_epochs": "grpo.updates_per_batch",
    "kl_coef": "grpo.beta",
    "epsilon_low": "grpo.eps_low",
    "max_prompt_length": "rollout.max_episode_tokens",
    "max_length": "rollout.max_episode_tokens",
    "max_seq_length": "rollout.max_episode_tokens",
    "per_device_train_batch_size": "a step's batch is rollout.tasks_per_step x rollout.group_size episodes, "
    "and grpo.micro_batch_size sequences go through one forward/backward pass",
    "train_batch_size": "a step's batch is rollout.tasks_per_step x rollout.group_size episodes",
    "generation_batch_size": "a step's batch is rollout.tasks_per_step x rollout.group_size episodes",
    "batch_size": "a GRPO step's batch is rollout.tasks_per_step x rollout.group_size episodes; "
    "the warm start's is warmup.batch_size",
    "gradient_accumulation_steps": "a step accumulates gradients over its whole batch, grpo.micro_batch_size "
    "sequences at a time; grpo.mini_batches splits it into several optimizer steps",
    "per_device_eval_batch_size": "train.eval_tasks held-out tasks per evaluation",
    "logging_steps": "every step is logged (metrics.jsonl), nothing to set",
    "warmup_steps": "grpo.lr is constant (there is no schedule); warmup.* here is a supervised warm start",
    "warmup_ratio": "grpo.lr is constant (there is no schedule); warmup.* here is a supervised warm start",
    "lr_scheduler_type": "grpo.lr is constant (there is no schedule)",
}

#: (section, key) -> the field of that section meant by a near-synonym.
ALIASES: dict[tuple[str, str], str] = {
    ("warmup", "path"): "file",
    ("warmup", "file_path"): "file",
    ("warmup", "data_file"): "file",
    ("warmup", "dataset"): "file",
    ("warmup", "data"): "file",
    ("train", "save_steps"): "save_every",
    ("train", "eval_steps"): "eval_every",
    ("train", "max_steps"): "steps",
    ("", "output_dir"): "run_dir",
    ("", "out_dir"): "run_dir",
}

#: How alike a typo and a field name must be (difflib ratio): "temprature" / "temperature"
#: is 0.95, "micro_batch" / "micro_batch_size" 0.81, "save_steps" / "seed" only 0.43.
CLOSE = 0.75

_DOTTED = re.compile(r"^[a-z_][a-z0-9_.]*$")


def suggest(section: str, key: str, fields: list[str], all_keys: list[str], trl_names: dict[str, str]) -> str:
    """A hint for ``key``, unknown in ``section`` ("" for the top level), or "".

    ``fields`` are the section's own field names, ``all_keys`` every dotted key of the
    config (for a key that exists in another section), ``trl_names`` the TRL names the
    config maps, each to where it goes (for a misspelt one). The hint starts with a
    space and sits in parentheses.
    """
    alias = ALIASES.get((section, key))
    if alias is not None and alias in fields:
        return f" (did you mean {alias!r}?)"
    foreign = FOREIGN_KEYS.get(key)
    if foreign is not None:
        if _DOTTED.match(foreign):
            return f" (TRL/transformers' {key} is {foreign!r} here)"
        return f" (TRL/transformers' {key}: {foreign})"
    close = difflib.get_close_matches(key, fields, n=1, cutoff=CLOSE)
    if close:
        return f" (did you mean {close[0]!r}?)"
    elsewhere = [k for k in all_keys if k.rsplit(".", 1)[-1] == key and k.rpartition(".")[0] != section]
    if elsewhere:
        return f" (did you mean {' or '.join(repr(k) for k in elsewhere)}?)"
    close = difflib.get_close_matches(key, list(trl_names), n=1, cutoff=0.85)
    if close:
        return f" (did you mean {close[0]!r}? TRL's name for {trl_names[close[0]]})"
    return ""
