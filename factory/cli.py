"""The `factory` command. Commands only: the work is in the pipeline, the drawing in `console`."""

from __future__ import annotations

import logging
import shlex
import shutil
import signal
import sys
import traceback
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Annotated, Any, Iterator, Optional

import typer
from typer.exceptions import TyperException

from rich.table import Table

from factory.budget import Budget, price_for
from factory.cluster import check_engine, describe_address, import_ray, ray_session
from factory.teachers import RayOptions, load_teacher_config
from factory.console import LiveProgress, console, error_line, summary_table
from factory.errors import FactoryError
from factory.logs import quiet_third_parties, run_log
from factory.output import STATE_DIR, OutputFolder
from factory.resources import factory_home
from factory.splits import parse_splits
from factory.tasks import Task, list_tasks, load_task

log = logging.getLogger("factory.cli")

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Build clean, documented fine-tuning datasets from a teacher model.",
)

BaseURLOption = Annotated[Optional[str], typer.Option(
    "--base-url", help="openai: teachers: the API's base URL (default: the teacher config's "
                       "api.base_url, else OPENAI_BASE_URL, else OpenAI's).")]
ConcurrencyOption = Annotated[Optional[int], typer.Option(
    min=1, help="openai: teachers: requests in flight at once (default: the teacher config's).")]
TaskOption = Annotated[str, typer.Option("--task", "-t", help="Built-in task name or YAML path.")]
SeedsOption = Annotated[Optional[Path], typer.Option(
    "--seeds", help="Seed examples file (JSONL or CSV) instead of the task's own.")]
SplitsOption = Annotated[Optional[str], typer.Option(
    help="Held-out splits, e.g. validation=0.1,test=0.1, stratified by the task's label "
         "(default: the task's `splits`; train only if none).")]
PrivateOption = Annotated[bool, typer.Option(
    "--private", help="Create the Hub repo as private (an existing repo keeps its setting).")]
RevisionOption = Annotated[Optional[str], typer.Option(
    help="Publish to this branch of the repo (created from main if missing).")]
EngineOption = Annotated[str, typer.Option(
    help="Where the work runs: local (this process) or ray (a Ray cluster; see "
         "docs/scale-out.md).")]
RayAddressOption = Annotated[Optional[str], typer.Option(
    help="--engine ray: the cluster to join (default: RAY_ADDRESS, else a local Ray instance "
         "for this run).")]


@app.command()
def distill(
    task: TaskOption,
    teacher: Annotated[str, typer.Option(
        help="embedded | vllm:MODEL_OR_PATH | openai:MODEL")] = "embedded",
    teacher_config: Annotated[Optional[Path], typer.Option(
        help="Teacher config YAML (engine options).")] = None,
    num_records: Annotated[Optional[int], typer.Option(
        "--num-records", "-n", min=1, help="Accepted rows wanted (default: the task's).")] = None,
    out: Annotated[Optional[Path], typer.Option(
        help="Output folder (default: runs/TASK).")] = None,
    seed: Annotated[int, typer.Option(help="Run seed: same seed, same requests.")] = 0,
    batch_size: Annotated[Optional[int], typer.Option(
        min=1, help="Requests per teacher batch (default: the task's).")] = None,
    seeds: SeedsOption = None,
    fresh: Annotated[bool, typer.Option(
        "--fresh", help="Start over: delete the output folder's earlier results.")] = False,
    fill_gaps: Annotated[Optional[Path], typer.Option(
        help="Real data (CSV, JSONL, parquet or dataset folder): set quotas so that real plus "
             "synthetic is balanced across labels.")] = None,
    label_field: Annotated[Optional[str], typer.Option(
        help="With --fill-gaps: the real data's label column (default: the task's label).")] = None,
    checkpoint_every: Annotated[float, typer.Option(
        min=0, help="Rewrite the dataset folder at least this often (seconds) during a run.")
    ] = 300.0,
    decontaminate: Annotated[Optional[Path], typer.Option(
        help="An eval set (file or dataset folder): rows that copy it are dropped.")] = None,
    decontaminate_field: Annotated[Optional[str], typer.Option(
        help="The eval set's text column (default: the task's, or 'text').")] = None,
    judge: Annotated[Optional[str], typer.Option(
        help="Score rows with an LLM judge: 'teacher' (the same model), another teacher spec, "
             "or 'off'. Default: the task's filters.judge.enabled.")] = None,
    base_url: BaseURLOption = None,
    concurrency: ConcurrencyOption = None,
    max_usd: Annotated[Optional[float], typer.Option(
        min=0, help="Stop cleanly before this invocation spends more (USD).")] = None,
    max_tokens: Annotated[Optional[int], typer.Option(
        min=1, help="Stop cleanly before this invocation uses more tokens (prompt + output).")
    ] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the estimate (requests, tokens, cost) and stop.")] = False,
    splits: SplitsOption = None,
    push_to_hub: Annotated[Optional[str], typer.Option(
        help="Publish the dataset to this Hub repo (OWNER/NAME) at the end of the run.")] = None,
    push_every: Annotated[Optional[int], typer.Option(
        min=1, help="With --push-to-hub: also publish each time this many more rows were "
                    "accepted.")] = None,
    private: PrivateOption = False,
    revision: RevisionOption = None,
    engine: EngineOption = "local",
    ray_address: RayAddressOption = None,
    ray_actors: Annotated[Optional[int], typer.Option(
        min=1, help="--engine ray: teacher actors (default: one per GPU group, else one per "
                    "node; 4 for openai: teachers).")] = None,
) -> None:
    """Generate, validate and write a dataset for TASK."""
    from factory.pipeline import RunOptions
    from factory.pipeline import distill as run_distill
    from factory.teachers import make_teacher

    quiet_third_parties()
    check_engine(engine)
    if engine == "ray":
        import_ray()
    ratios = parse_splits(splits) if splits is not None else None
    pusher = _hub_pusher(push_to_hub, push_every, private, revision)
    loaded = load_task(task, seeds_path=str(seeds) if seeds else None)
    judge_spec = _judge_spec(loaded, judge)
    _trial_render(loaded)
    config = load_teacher_config(teacher_config)
    budget = Budget(max_usd, max_tokens, price_for(_spec_identity(teacher), config.price))
    budget.check(teacher)
    quotas = fill_gap_quotas(loaded, fill_gaps, label_field, num_records) if fill_gaps else None
    target = out or Path("runs") / loaded.name
    wanted = sum(quotas.values()) if quotas else num_records or loaded.config.num_records
    if dry_run:
        _print_estimate(loaded, teacher, quotas or _quotas(loaded, wanted, seed), seed,
                        budget.price, target)
        return
    if teacher.startswith("openai:"):
        from factory.teachers.api import api_key

        api_key()  # a missing key stops the run before anything is written
    folder = prepare_output(target, loaded, fresh)
    options = RunOptions(out=target, num_records=wanted, seed=seed, batch_size=batch_size,
                         command=_command_line(), checkpoint_seconds=checkpoint_every,
                         quotas=quotas, decontaminate=decontaminate,
                         decontaminate_field=decontaminate_field, budget=budget,
                         splits=ratios, checkpoint_rows=push_every if pusher else None,
                         after_write=pusher)
    progress = LiveProgress()
    if pusher:
        pusher.say = progress.note
        # a resumed run re-admits its cached rows first: no checkpoint push below what the
        # folder (and so the Hub) already held
        pusher.pushed_at = (folder.read_manifest() or {}).get("accepted", 0)
    console.print(f"[bold]factory distill[/] · task [bold]{loaded.name}[/] · "
                  f"{options.num_records} records → {target}")
    if quotas:
        console.print(f"[cyan]·[/] filling gaps in {fill_gaps}: synthetic quotas "
                      + ", ".join(f"{k} {v}" for k, v in quotas.items() if v))
    state = folder.begin(loaded)
    with run_log(folder.log_path), stop_on_sigterm(), _cluster(engine, ray_address, progress):
        log.info("command: %s (run %d in this folder)", options.command, state["runs"])
        teach = judge_teacher = None
        spread = (RayOptions(ray_actors, describe_address(ray_address))
                  if engine == "ray" else None)
        try:
            progress.stage(f"Loading teacher {teacher}"
                           + (" on Ray" if spread else ""))
            teach = make_teacher(teacher, teacher_config, say=progress.note,
                                 base_url=base_url, concurrency=concurrency, ray=spread)
            judge_teacher = None
            if judge_spec == "teacher" or judge_spec == teacher:
                judge_teacher = teach
            elif judge_spec:
                judge_teacher = make_teacher(judge_spec, teacher_config, say=progress.note,
                                             base_url=base_url, concurrency=concurrency,
                                             ray=spread)
            result = run_distill(loaded, teach, options, progress, runs=state["runs"],
                                 judge_teacher=judge_teacher)
        except Exception:
            log.exception("run failed")
            raise
        finally:
            progress.close()
            if teach is not None:
                teach.close()
            if judge_teacher is not None and judge_teacher is not teach:
                judge_teacher.close()
    _report(folder, result, options, pusher)


@app.command()
def estimate(
    task: TaskOption,
    num_records: Annotated[Optional[int], typer.Option(
        "--num-records", "-n", min=1, help="Accepted rows wanted (default: the task's).")] = None,
    teacher: Annotated[str, typer.Option(
        help="embedded | vllm:MODEL_OR_PATH | openai:MODEL")] = "embedded",
    teacher_config: Annotated[Optional[Path], typer.Option(
        help="Teacher config YAML (its price overrides configs/prices.yaml).")] = None,
    out: Annotated[Optional[Path], typer.Option(
        help="An earlier run's folder: use its acceptance rate and token counts.")] = None,
    seed: Annotated[int, typer.Option(help="Run seed.")] = 0,
    seeds: SeedsOption = None,
) -> None:
    """Print the requests, tokens and cost a distill run would need. Spends nothing."""
    loaded = load_task(task, seeds_path=str(seeds) if seeds else None)
    config = load_teacher_config(teacher_config)
    price = price_for(_spec_identity(teacher), config.price)
    wanted = num_records or loaded.config.num_records
    _print_estimate(loaded, teacher, _quotas(loaded, wanted, seed), seed, price,
                    out or Path("runs") / loaded.name)


def _spec_identity(spec: str) -> dict[str, str]:
    kind, _, model = spec.partition(":")
    return {"kind": kind, "model": model}


def _quotas(task: Task, num_records: int, seed: int) -> dict[str, int]:
    from factory.plan import Planner

    return Planner(task, seed).quotas(num_records)


def _print_estimate(task: Task, teacher: str, quotas: dict[str, int], seed: int, price,
                    out: Path) -> None:
    from factory.estimate import estimate as run_estimate

    est = run_estimate(task, quotas, seed, price, out)
    table = Table(title=f"Estimate · {task.name} · {sum(quotas.values())} records · {teacher}",
                  show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("requests", f"{est.requests:,}" + (
        f" (after the {est.already_done:,} already made in {out})" if est.already_done else ""))
    table.add_row("acceptance", f"{est.acceptance:.0%} — {est.acceptance_source}")
    table.add_row("prompt tokens", f"{est.prompt_tokens:,}")
    table.add_row("output tokens", f"{est.completion_tokens:,} expected, "
                                   f"{est.completion_tokens_max:,} at most")
    if est.usd is not None:
        table.add_row("cost", f"${est.usd:,.4f} expected, ${est.usd_max:,.4f} at most")
    else:
        table.add_row("cost", "unknown: no price for this model (add `price:` to a "
                              "--teacher-config)")
    console.print(table)
    console.print("Nothing was sent to the teacher.")


def prepare_output(target: Path, task: Task, fresh: bool) -> OutputFolder:
    """Check the folder can take this run (a resume, or --fresh) before anything is written."""
    folder = OutputFolder(target)
    if target.exists() and not target.is_dir():
        raise FactoryError("exists and is not a folder", path=target, field="--out",
                           hint="choose another --out")
    if target.is_dir() and any(target.iterdir()) and not (target / STATE_DIR).is_dir():
        raise FactoryError("not empty and not a factory output folder", path=target,
                           field="--out", hint="choose an empty or new folder")
    state = folder.read_state()
    if state and not fresh and state.get("layout") != task.layout_fingerprint():
        raise FactoryError(f"made by an incompatible config (task {state.get('task')!r} with "
                           "other fields or labels)", path=target, field="--out",
                           hint="use another --out, or add --fresh to start over")
    if fresh and target.is_dir():
        shutil.rmtree(target)
    return folder


def _judge_spec(task: Task, option: str | None) -> str | None:
    """Which teacher judges: --judge wins; else the task's filters.judge.enabled."""
    if option == "off":
        return None
    wanted = option or ("teacher" if task.config.filters.judge.enabled else None)
    if wanted and task.judge_template is None:
        raise FactoryError("the task has no judge rubric", path=task.path,
                           field="filters.judge.rubric",
                           hint="add filters.judge.rubric and criteria, or drop --judge")
    return wanted


def fill_gap_quotas(task: Task, real: Path, label_field: str | None,
                    total: int | None) -> dict[str, int]:
    """Quotas that balance real plus synthetic rows across the task's slice labels."""
    from factory.datafiles import label_counts
    from factory.plan import gap_quotas

    slice_field = task.config.slice_field
    counts = label_counts(real, label_field or slice_field)
    weights = task.config.label_weights(slice_field)
    unknown = sorted(set(counts) - set(weights))
    if unknown:
        raise FactoryError(f"labels {unknown[:5]} are not values of the task's {slice_field!r}",
                           path=real, field=label_field or slice_field,
                           hint="use the task's label names, or another --label-field")
    quotas = gap_quotas(counts, weights, total)
    if not sum(quotas.values()):
        raise FactoryError("the real data is already balanced: nothing to fill", path=real,
                           field="--fill-gaps", hint="give --num-records to add more anyway")
    return quotas


def _cluster(engine: str, address: str | None, progress: LiveProgress) -> Any:
    """The Ray connection for `--engine ray` (a local instance unless an address is given)."""
    if engine != "ray":
        return nullcontext()
    progress.stage(f"Connecting to Ray ({describe_address(address)})")
    return ray_session(address)


@contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """SIGTERM stops a run like Ctrl-C: no new batches, what was accepted is written."""
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _trial_render(task: Task) -> None:
    """Render one request so a template error stops the run before anything is written."""
    from factory.plan import Planner
    from factory.render import Renderer

    planner, renderer = Planner(task, 0), Renderer(task)
    first = next(iter(planner.quotas(1000)))
    renderer.messages(planner.request(first, 0))
    if task.judge_template is not None:
        renderer.judge_messages(task.seeds[0].record, list(task.config.filters.judge.criteria))


def _command_line() -> str:
    """The command as a user would type it again (`python -m factory` is `factory` too)."""
    return shlex.join(["factory", *sys.argv[1:]])


def _report(folder: OutputFolder, result, options, pusher=None) -> None:
    manifest = folder.read_manifest() or {}
    console.print(summary_table(manifest))
    console.print(f"Dataset: [bold]{folder.path}[/]  ·  load it with "
                  f"datasets.load_dataset({str(folder.path)!r})")
    if pusher is not None and pusher.last is not None:
        _print_published(pusher.last)
    elif pusher is not None and (result.interrupted or result.stopped):
        console.print("[yellow]Not published:[/] the run did not finish.")
    if (result.stopped or result.interrupted) and not manifest.get("accepted"):
        console.print("No row is final yet: rows are written once their selection block fills.")
    if result.stopped == "budget":
        spend = manifest.get("spend") or {}
        spent = f"${spend['usd']:.4f}" if spend.get("usd") is not None else "—"
        console.print(f"[yellow]Stopped at the spending cap[/] ({spent}, {spend.get('tokens', 0):,}"
                      " tokens this run). Everything accepted is written and every answer is "
                      "cached. Continue with the same command and a higher --max-usd / "
                      f"--max-tokens: [bold]{options.command}[/]")
        raise typer.Exit(4)
    if result.interrupted:
        if result.pending:
            console.print(f"{result.pending} candidates wait for their selection block to fill; "
                          "they are cached and a resumed run uses them.")
        console.print(f"[yellow]Interrupted.[/] Resume with: [bold]{options.command}[/]")
        raise typer.Exit(130)
    if not result.complete:
        short = {s.value: f"{len(s.rows)}/{s.quota}" for s in result.slices.values()
                 if len(s.rows) < s.quota}
        console.print(f"[yellow]Incomplete:[/] slices short of quota: {short}. "
                      "See the dropped reasons above and in the manifest.")
        raise typer.Exit(3)


@app.command("filter")
def filter_command(
    source: Annotated[Path, typer.Argument(
        help="CSV, JSONL or parquet file, or a dataset folder.")],
    out: Annotated[Path, typer.Option(help="Output folder (same layout as distill).")],
    text_field: Annotated[str, typer.Option(help="The column the filters read.")] = "text",
    label_field: Annotated[Optional[str], typer.Option(
        help="A label column: kept-row counts per label go to the manifest.")] = None,
    only: Annotated[Optional[str], typer.Option(
        help="Comma-separated filters to run (default: all but length): length, refusal, "
             "repetition, template_leftover, language, pii, exact, near.")] = None,
    threshold: Annotated[float, typer.Option(
        min=0.05, max=1.0, help="Near-duplicate Jaccard threshold.")] = 0.6,
    decontaminate: Annotated[Optional[Path], typer.Option(
        help="An eval set: rows that copy it are dropped as contaminated.")] = None,
    decontaminate_field: Annotated[str, typer.Option(
        help="The eval set's text column.")] = "text",
    engine: EngineOption = "local",
    ray_address: RayAddressOption = None,
) -> None:
    """Run the filter chain on an existing dataset and write kept and dropped rows."""
    from factory.refilter import FilterOptions, parse_only, refilter

    quiet_third_parties()
    check_engine(engine)
    if engine == "ray":
        import_ray()
    options = FilterOptions(source=source, out=out, text_field=text_field,
                            label_field=label_field, only=parse_only(only),
                            decontaminate=decontaminate, decontaminate_field=decontaminate_field,
                            threshold=threshold, command=_command_line(), engine=engine,
                            ray_address=ray_address)
    if out.exists() and any(out.iterdir()) and not (out / "manifest.json").is_file():
        raise FactoryError("not empty and not a factory output folder", path=out, field="--out",
                           hint="choose an empty or new folder")
    console.print(f"[bold]factory filter[/] · {source} → {out}"
                  + (f" · on Ray ({describe_address(ray_address)})" if engine == "ray" else ""))
    manifest = refilter(options)
    table = Table(title="Filter summary", show_header=False, title_justify="left")
    table.add_row("kept", f"{manifest['accepted']} / {manifest['input_rows']}")
    for reason, n in manifest["dropped"].items():
        table.add_row(f"  dropped: {reason}", str(n))
    console.print(table)
    console.print(f"Kept rows: datasets.load_dataset({str(out)!r}); dropped rows: "
                  f"datasets.load_dataset({str(out)!r}, 'rejected')")


@app.command("report")
def report_command(
    folder: Annotated[Path, typer.Argument(help="The dataset folder a distill run wrote.")],
    reference: Annotated[Path, typer.Option(
        help="Real data (CSV, JSONL, parquet or dataset folder) to compare against; the "
             "student's real training set.")],
    test: Annotated[Optional[Path], typer.Option(
        help="Held-out real data: train a student with and without the synthetic rows and "
             "score it here. Without it the downstream comparison is skipped.")] = None,
    text_field: Annotated[Optional[str], typer.Option(
        help="Text column in every input (default: the task's).")] = None,
    label_field: Annotated[Optional[str], typer.Option(
        help="Label column in every input (default: the task's first label).")] = None,
    seeds: SeedsOption = None,
    spot_check: Annotated[int, typer.Option(
        min=1, help="Rows in the spot-check sample.")] = 150,
    seed: Annotated[int, typer.Option(help="Seed of every sample and bootstrap.")] = 0,
) -> None:
    """Measure FOLDER against real data; write FOLDER/report/report.html and report.json."""
    from factory.report import ReportOptions, build_report

    quiet_third_parties()
    options = ReportOptions(folder=folder, reference=reference, test=test,
                            text_field=text_field, label_field=label_field, seeds=seeds,
                            spot_check=spot_check, seed=seed, command=_command_line())
    console.print(f"[bold]factory report[/] · {folder} against {reference}")
    result = build_report(options, say=lambda m: console.print(f"[cyan]·[/] {m}"))
    table = Table(title="Report headline", show_header=False, title_justify="left")
    for name, value in result["headline"].items():
        table.add_row(name, str(value))
    console.print(table)
    console.print(f"Report: [bold]{folder / 'report' / 'report.html'}[/]")


@app.command()
def preview(
    task: TaskOption,
    n: Annotated[int, typer.Option("-n", min=1, help="How many prompts to show.")] = 3,
    seed: Annotated[int, typer.Option(help="Run seed.")] = 0,
    seeds: SeedsOption = None,
) -> None:
    """Print rendered prompts (with their seeds and attributes) without calling a teacher."""
    from rich.panel import Panel

    from factory.plan import Planner
    from factory.render import Renderer

    loaded = load_task(task, seeds_path=str(seeds) if seeds else None)
    planner, renderer = Planner(loaded, seed), Renderer(loaded)
    slices = list(planner.quotas(max(n, 1)))
    for i in range(n):
        request = planner.request(slices[i % len(slices)], i // len(slices))
        head = (f"labels {dict(request.labels)} · attributes {dict(request.attributes)} · "
                f"seeds {list(request.seed_ids)} · sampling seed {request.seed}")
        if request.source_id is not None:
            head += f" · rewrites {request.source_id} ({request.rewrite})"
        console.print(Panel(head, title=f"request {i + 1}", style="cyan"))
        for message in renderer.messages(request):
            console.print(f"[bold]{message['role']}[/]")
            console.print(message["content"], markup=False)
        console.print()


@app.command("tasks")
def tasks_command(
    folder: Annotated[Optional[Path], typer.Argument(help="Also list task files here.")] = None,
) -> None:
    """List the built-in tasks and the task files in FOLDER (default: ./configs, .)."""
    folders = [folder] if folder else [p for p in (Path("configs"), Path(".")) if p.is_dir()]
    table = Table("task", "source", "description")
    for name, path, builtin in list_tasks(folders):
        try:
            description = load_task(str(path), require_seeds=False).config.description
        except FactoryError as exc:
            description = f"[red]invalid: {exc}[/]"
        table.add_row(name, "built-in" if builtin else str(path), description[:90])
    console.print(table)


@app.command()
def publish(
    folder: Annotated[Path, typer.Argument(help="A dataset folder (the --out of distill).")],
    repo_id: Annotated[str, typer.Option(help="The Hub dataset repo: OWNER/NAME.")],
    private: PrivateOption = False,
    revision: RevisionOption = None,
    message: Annotated[Optional[str], typer.Option(help="The commit message.")] = None,
) -> None:
    """Publish a dataset folder to the Hugging Face Hub (only what changed is sent)."""
    from factory.publish import publish as publish_folder

    quiet_third_parties()
    console.print(f"[bold]factory publish[/] · {folder} → {repo_id}"
                  + (f" (branch {revision})" if revision else ""))
    result = publish_folder(folder, repo_id, private=private, revision=revision, message=message,
                            say=lambda line: console.print(f"[yellow]·[/] {line}"))
    _print_published(result)


def _print_published(result) -> None:
    where = f"{result.url}" + (f" (branch {result.revision})" if result.revision != "main"
                               else "")
    if not result.commits:
        console.print(f"[green]✓[/] {where} already holds this dataset: nothing to commit "
                      f"({len(result.unchanged)} files unchanged).")
        return
    console.print(f"[green]✓[/] Published to {where}: {len(result.commits)} commit(s), "
                  f"{len(result.uploaded)} files uploaded, {len(result.deleted)} removed, "
                  f"{len(result.unchanged)} unchanged"
                  + (f", {result.retries} retried requests" if result.retries else "") + ".")
    console.print(f"Load it with datasets.load_dataset({result.repo_id!r}"
                  + (f", revision={result.revision!r}" if result.revision != "main" else "")
                  + ")")


def _hub_pusher(repo_id: str | None, every: int | None, private: bool,
                revision: str | None):
    """Checks the options (and that a token exists) before a run starts."""
    from factory.publish import HubPusher, check_repo_id, resolve_token

    if repo_id is None:
        if every is not None or private or revision:
            raise FactoryError("needs --push-to-hub", field="--push-every/--private/--revision",
                               hint="add --push-to-hub OWNER/NAME")
        return None
    check_repo_id(repo_id)
    resolve_token()
    return HubPusher(repo_id, every, private, revision)


def main() -> None:
    try:
        code = app(standalone_mode=False)
    except FactoryError as exc:
        error_line(str(exc))
        sys.exit(exc.exit_code)
    except TyperException as exc:  # usage errors: a bad option or value
        error_line(exc.format_message())
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        error_line("interrupted")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the one place that turns crashes into a line
        path = _crash_log()
        first = (str(exc).strip().splitlines() or [""])[0]
        error_line(f"internal error: {type(exc).__name__}: {first} (traceback in {path})")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


def _crash_log() -> Path:
    path = factory_home() / "last-crash.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(traceback.format_exc())
    return path
