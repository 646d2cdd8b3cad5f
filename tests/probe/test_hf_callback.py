"""``SynapseCallback`` in a real ``transformers.Trainer`` on a tiny random Llama (CPU, offline)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

import synapse_probe

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")  # the Trainer needs it; in the test extra

from synapse_native.protocol import AttentionPattern  # noqa: E402
from synapse_probe.integrations import SynapseCallback  # noqa: E402
from synapse_probe.integrations.hf import metric_values  # noqa: E402

VOCAB, TOKENS, MAX_STEPS = 128, 16, 4


class Tokens(torch.utils.data.Dataset):
    """A few random token sequences, each its own label."""

    def __init__(self, n: int = 8) -> None:
        generator = torch.Generator().manual_seed(0)
        self.ids = torch.randint(0, VOCAB, (n, TOKENS), generator=generator)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


def tiny_llama() -> Any:
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=VOCAB,
        max_position_embeddings=64,
    )
    return transformers.LlamaForCausalLM(config)


class SendEachStep(transformers.TrainerCallback):
    """Waits at each step's end until the steps before it are sent: on a loaded machine the
    encoder may fall behind and drop (and count) a step, right for training, not for these tests."""

    def __init__(self, callback: SynapseCallback) -> None:
        self.callback = callback

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.callback.probe is not None:
            assert self.callback.probe.flush()


def trainer(tmp_path: Path, model: Any, callback: SynapseCallback, tokenizer: Any = None) -> Any:
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path),
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        max_steps=MAX_STEPS,
        per_device_train_batch_size=2,
        learning_rate=1e-3,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    return transformers.Trainer(
        model=model,
        args=args,
        train_dataset=Tokens(),
        callbacks=[callback, SendEachStep(callback)],
        processing_class=tokenizer,
    )


def test_callback_attaches_numbers_steps_like_the_trainer_streams_its_logs_and_closes(
    server, tmp_path: Path
) -> None:
    callback = SynapseCallback(server=server, rate_hz=math.inf)
    run = trainer(tmp_path, tiny_llama(), callback)
    run.train()

    steps = list(range(1, MAX_STEPS + 1))
    assert run.state.global_step == MAX_STEPS
    assert server.steps() == steps  # one measured step per optimizer step, numbered alike
    assert server.metas[0].sites[0].name == "model.layers.0.self_attn"
    assert callback.probe is not None and callback.probe.stats().steps_seen == MAX_STEPS

    step_logs = [entry for entry in run.state.log_history if "loss" in entry]
    assert [entry["step"] for entry in step_logs] == steps
    metrics = dict(server.metrics()[: len(steps)])
    assert sorted(metrics) == steps
    for entry in step_logs:
        sent = metrics[entry["step"]]
        assert sent["loss"] == entry["loss"]
        assert sent["lr"] == entry["learning_rate"]
        assert sent["grad_norm"] == pytest.approx(float(entry["grad_norm"]))
    # The summary the trainer logs at the end goes through under its own names.
    final_step, final = server.metrics()[-1]
    assert final_step == MAX_STEPS and "train_samples_per_second" in final

    # The probe it attached is closed: no default probe is left to log to.
    with pytest.raises(RuntimeError, match="no synapse probe is attached"):
        synapse_probe.log_activation(0, torch.zeros(4))


def test_callback_uses_a_given_probe_and_leaves_it_open(server, tmp_path: Path) -> None:
    model = tiny_llama()
    probe = synapse_probe.attach(model, server=server, rate_hz=math.inf)
    callback = SynapseCallback(probe)
    run = trainer(tmp_path, model, callback)
    run.train()
    assert callback.probe is probe
    probe.log_metrics(step=99, extra=1.0)  # still open
    probe.close()
    assert server.steps() == list(range(1, MAX_STEPS + 1))
    assert server.metrics()[-1] == (99, {"extra": 1.0})


def test_metric_values_rename_truncate_and_keep_only_numbers() -> None:
    logs = {
        "loss": float("nan"),
        "learning_rate": 3e-4,
        "grad_norm": torch.tensor(2.5),
        "epoch": 1,
        "train_steps_per_second_in_total": 4.0,  # 31 bytes
        "é" * 13: 1.0,  # 26 bytes: cut to whole characters
        "step": 7,
        "done": True,
        "note": "text",
        "hist": torch.ones(3),
    }
    values = metric_values(logs)
    names = ["loss", "lr", "grad_norm", "epoch", "train_steps_per_second_i", "é" * 12]
    assert list(values) == names
    assert math.isnan(values["loss"]) and values["lr"] == 3e-4 and values["epoch"] == 1.0
    assert isinstance(values["grad_norm"], torch.Tensor)


def test_the_attached_probe_names_tokens_with_the_trainers_tokenizer(
    server, tmp_path: Path
) -> None:
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel

    vocabulary = {f"w{i}": i for i in range(VOCAB)}
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(WordLevel(vocabulary, unk_token="w0")), pad_token="w0"
    )
    callback = SynapseCallback(server=server, rate_hz=math.inf, pattern_hz=math.inf)
    trainer(tmp_path, tiny_llama(), callback, tokenizer).train()
    patterns = [m for _, _, m in server.messages if isinstance(m, AttentionPattern)]
    assert patterns
    batches = {tuple(f"w{i}" for i in ids.tolist()) for ids in Tokens().ids}
    assert all(pattern.tokens in batches for pattern in patterns)
