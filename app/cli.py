"""`recovery` command line: ingest, report, history, audit verify, export, import, erase, rebuild, serve, relay,
metrics, dlq replay, demo (and demo --live), up, down."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.binaries import CannotStart
from app.logs import configure as configure_logging
from app.settings import Settings
from domain.policy import PolicyError
from infra.files import PathUnusable, open_private
from infra.reach import StoreUnavailable

if TYPE_CHECKING:
    from rich.progress import Progress

# Exit codes besides 0 and 1 (`audit verify` found a problem): 2 a bad setting, argument or path,
# 3 the database cannot be reached, 4 `rebuild` blocked by another session's lock.
EXIT_UNUSABLE, EXIT_UNREACHABLE, EXIT_BUSY = 2, 3, 4


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {value!r}") from None


def cmd_ingest(args: argparse.Namespace) -> int:
    from app.platform import Platform

    path = Path(args.file)
    if not path.is_file():
        print(f"recovery ingest: no such file: {path}", file=sys.stderr)
        return 2
    platform = Platform(settings=args.settings)
    summary: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    unknown: Counter[str] = Counter()
    dead_path = platform.dead_letter_path()
    total = path.stat().st_size
    try:
        with path.open("rb") as source, open_private(dead_path, "a") as dead, _progress(total) as bar:
            def numbered() -> Iterator[bytes]:
                for raw in source:
                    bar(len(raw))
                    yield raw

            def record(outcomes: list[Any]) -> None:
                for o in outcomes:
                    summary[o.result] += 1
                    unknown.update(o.unknown_fields)
                    if o.reason:
                        reasons[o.reason] += 1
                        entry = {"line": o.raw, "reason": o.reason, "message": o.message, "source": str(path)}
                        if o.original:
                            entry["original_base64"] = o.original
                        dead.write(json.dumps(entry, ensure_ascii=False) + "\n")

            platform.ingest_lines(numbered(), batch_size=args.batch_size, on_batch=record,
                                  retry_refused=args.retry_refused)
    finally:
        platform.close()
    by_reason = ", ".join(f"{r} {n}" for r, n in sorted(reasons.items()))
    print(f"accepted {summary['accepted']}, duplicates {summary['duplicate']}, "
          f"rejected {summary['rejected']}" + (f" ({by_reason})" if by_reason else "")
          + f", blank {summary['blank']}")
    if unknown:
        print("unknown fields (tolerated, not recorded): "
              + ", ".join(f"{k} {n}" for k, n in sorted(unknown.items())))
    if summary["rejected"]:
        print(f"dead letters: {dead_path}")
    return 0


class _progress:
    """A rich progress bar on a terminal (bytes of a file, or a count of events); silent otherwise."""

    progress: Progress | None

    def __init__(self, total: int, label: str = "ingest", bytes_: bool = True):
        self.total, self.label, self.bytes, self.progress = total, label, bytes_, None

    def __enter__(self):
        if not sys.stderr.isatty():
            return lambda n: None
        from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        self.progress = progress = Progress(self.label, BarColumn(),
                                            DownloadColumn() if self.bytes else MofNCompleteColumn(),
                                            TimeRemainingColumn(), transient=True, console=None)
        self.progress.start()
        task = self.progress.add_task(self.label, total=self.total)
        return lambda n: progress.advance(task, n)

    def __exit__(self, *exc: object) -> None:
        if self.progress:
            self.progress.stop()


def _moment(value: str) -> datetime:
    """An ISO 8601 instant; without an offset it is read in the policy's time zone (at use)."""
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a timestamp (ISO 8601, e.g. 2026-12-01T00:00+08:00): {value!r}") from None


def _zoned(moment: datetime, policy: Any) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=policy.timezone)


def _show(document: dict[str, Any], fmt: str, render: Any) -> None:
    print(json.dumps(document, ensure_ascii=False, indent=2) if fmt == "json" else render(document))


def cmd_report(args: argparse.Namespace) -> int:
    from app.platform import Platform
    from app.table import render_table
    from infra.sql import SQLITE
    from projections.asof import view_as_of
    from projections.report import build_report

    with Platform(settings=args.settings) as platform:
        if args.as_of is None:
            platform.catch_up()
            report = build_report(platform.app.dialect, platform.app.datastore, platform.policy,
                                  args.start, args.end, args.by)
        else:
            moment = _zoned(args.as_of, platform.policy)
            with view_as_of(platform.app, platform.policy, moment) as view:
                report = build_report(SQLITE, view.datastore, platform.policy, args.start, args.end, args.by)
            report["as_of"] = moment.isoformat()
    _show(report, args.format, render_table)
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from app.platform import Platform
    from app.table import render_history
    from projections.history import ComplaintNotRecorded, case_history, complaint_history

    with Platform(settings=args.settings) as platform:
        platform.catch_up()  # later complaints repeating this one are found through the read model
        moment = None if args.as_of is None else _zoned(args.as_of, platform.policy)
        try:
            history = complaint_history(platform.app, platform.policy, args.complaint_id, moment)
        except ComplaintNotRecorded:
            case = case_history(platform.app, platform.policy, args.complaint_id, moment)  # SPEC §7
            if case is None:
                raise
            history = case
    _show(history, args.format, render_history)
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from app.platform import Platform
    from infra.chain import verify

    with Platform(settings=args.settings) as platform:
        verdict = verify(platform.app, expect_head=args.expect_head)
    if args.format == "json":
        print(json.dumps({"events": verdict.events, "blocks": verdict.blocks, "head": verdict.head,
                          "ok": not verdict.problems, "problems": [p.as_dict() for p in verdict.problems]}, indent=2))
    else:
        for p in verdict.problems:
            where = f"log position {p.notification_id}" if p.notification_id is not None else "log"
            what = f" (aggregate {p.originator_id} version {p.version})" if p.originator_id else ""
            print(f"{p.kind.upper():<10} {where}{what}: {p.detail}")
        state = "INTACT" if not verdict.problems else f"{len(verdict.problems)} PROBLEMS"
        print(f"{state}: {verdict.events} events in {verdict.blocks} writes checked; head {verdict.head}")
    return 0 if not verdict.problems else 1


def cmd_export(args: argparse.Namespace) -> int:
    from app.platform import Platform
    from service.transfer import export_rows, write_export

    with Platform(settings=args.settings) as platform:
        rows = export_rows(platform.app, platform.policy, args.start, args.end)
        if args.output:
            with open_private(args.output, "w", newline="") as out:
                count = write_export(rows, out, args.format)
            print(f"exported {count} events to {args.output}", file=sys.stderr)
        else:
            write_export(rows, sys.stdout, args.format)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from app.platform import Platform
    from service.transfer import import_rows, read_export

    path = Path(args.file)
    if not path.is_file():
        print(f"recovery import: no such file: {path}", file=sys.stderr)
        return 2
    fmt = args.format or ("csv" if path.suffix.lower() == ".csv" else "jsonl")
    with Platform(settings=args.settings) as platform:
        with path.open(encoding="utf-8", newline="") as source:
            rows = read_export(source, fmt)
        count = import_rows(platform.app, platform.policy, rows)
        platform.catch_up()
    print(f"imported {count} events; hashes checked; read model caught up")
    return 0


def cmd_erase(args: argparse.Namespace) -> int:
    from app.platform import Platform
    from service.erase import erase_customer

    with Platform(settings=args.settings) as platform:
        done = erase_customer(platform.app, args.customer_id, platform.dead_letter_path())
    if not done.keys:
        print("nothing to erase: no key is held for this customer (erased before, or never seen)")
    else:
        print(f"erased: {done.keys} key(s) destroyed; the personal fields of {len(done.complaints)} complaint(s) now "
              "read as [erased]; events, hashes and KPIs are unchanged")
    if done.dead_letters_redacted:
        print(f"redacted {done.dead_letters_redacted} refused line(s) in {platform.dead_letter_path()}")
    return 0


def cmd_rebuild(args: argparse.Namespace) -> int:
    from app.platform import Platform
    from infra.locks import LockBusy

    lock_timeout = args.settings.lock_timeout_seconds
    with Platform(settings=args.settings) as platform:
        total = platform.app.recorder.max_notification_id() or 0
        with _progress(total, f"rebuild {args.projection}", bytes_=False) as bar:
            if args.check:
                at, differences = platform.check(progress=bar)
            else:
                try:
                    at = platform.rebuild(progress=bar, lock_timeout=lock_timeout)
                except LockBusy as busy:
                    if args.debug:
                        raise
                    print(f"recovery rebuild: {busy}; nothing was changed", file=sys.stderr)
                    return EXIT_BUSY
    if not args.check:
        print(f"rebuilt projection {args.projection} from {at} recorded events; switched in one transaction")
        return 0
    for d in differences:
        print(f"DIFFERS {d.table}: {len(d.only_live)} row(s) only in the live read model, "
              f"{len(d.only_rebuilt)} only in the one rebuilt from the log")
        for row in d.only_live[:5]:
            print(f"  live:    {row}")
        for row in d.only_rebuilt[:5]:
            print(f"  rebuilt: {row}")
    state = "MATCHES" if not differences else f"{len(differences)} TABLE(S) DIFFER"
    print(f"{state}: the read model against one rebuilt from the log up to position {at}; nothing switched")
    return 0 if not differences else 1


def cmd_policy_check(args: argparse.Namespace) -> int:
    from domain.policy import load_policy

    load_policy(args.file)  # PolicyError names the bad key (exit 2)
    print(f"{args.file}: a valid policy")
    return 0


def cmd_policy_adopt(args: argparse.Namespace) -> int:
    from app.platform import Platform
    from domain.policy import load_policy
    from service.policies import AdoptionRefused

    load_policy(args.file)
    content = Path(args.file).read_text(encoding="utf-8")
    with Platform(settings=args.settings) as platform:
        platform.record_first_policy()
        try:
            version = platform.book.adopt(content, args.effective_from, args.by)
        except AdoptionRefused as refused:
            print(f"recovery policy adopt: refused: {refused}", file=sys.stderr)
            return 2
    print(f"adopted policy version {version.number}, effective from {version.effective_from.isoformat()} "
          f"(sha256 {version.sha256[:16]}…)")
    return 0


def cmd_policy_list(args: argparse.Namespace) -> int:
    from app.platform import Platform

    with Platform(settings=args.settings) as platform:
        versions = platform.book.versions()
    rows: list[dict[str, Any]] = [
        {"version": v.number, "effective_from": v.effective_from.isoformat(), "adopted_by": v.adopted_by,
         "adopted_at": v.adopted_at.isoformat(), "sha256": v.sha256} for v in versions]
    if args.format == "json":
        print(json.dumps(rows, ensure_ascii=False, indent=2))
    elif not rows:
        print("no policy version recorded yet: the first write records the configured policy as version 1")
    for r in rows if args.format == "table" else []:
        print(f"v{r['version']:<3} effective {r['effective_from']:<26} adopted {r['adopted_at'][:19]} "
              f"by {r['adopted_by']:<20} sha256 {r['sha256'][:16]}…")
    return 0


def cmd_policy_show(args: argparse.Namespace) -> int:
    from app.platform import Platform
    from domain import clock
    from domain.policy import policy_text

    with Platform(settings=args.settings) as platform:
        moment = _zoned(args.at, platform.policy) if args.at else clock.now()
        every = platform.book.versions()
        in_force = [v for v in every if v.effective_from <= moment] or every[:1]
        if not in_force:
            print(f"# no version recorded yet; the configured policy:\n{policy_text(platform.policy)}", end="")
            return 0
        version = in_force[-1]
    print(f"# policy version {version.number}, in force at {moment.isoformat()}: effective from "
          f"{version.effective_from.isoformat()}, adopted {version.adopted_at.isoformat()} by {version.adopted_by}, "
          f"sha256 {version.sha256}")
    print(version.content, end="")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from app.demo import run_demo

    if args.live:
        from app.feeder import feed

        return feed(args.settings.kafka(), speed=args.speed, rate=args.rate, seed=args.seed,
                    complaints=args.complaints)
    return run_demo(Path(args.dir), seed=args.seed, complaints=args.complaints)


def cmd_up(args: argparse.Namespace) -> int:
    from app.live import up

    return up(args.settings)


def cmd_down(args: argparse.Namespace) -> int:
    from app.live import down

    return down(args.settings)


def cmd_serve(args: argparse.Namespace) -> int:
    from app.serve import serve

    return serve(args.settings)


def cmd_relay(args: argparse.Namespace) -> int:
    from app.relay import relay

    return relay(args.settings, parent=args.parent)


def cmd_metrics(args: argparse.Namespace) -> int:
    import logging
    import signal
    import threading

    from app.http import MetricsServer
    from app.platform import Platform

    platform = Platform(settings=args.settings)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    server = MetricsServer(platform, host=args.host, port=args.port).start()
    print(f"serving /metrics, /healthz, /readyz on http://{args.host}:{server.port}", flush=True)
    try:
        while not stopping.is_set():
            try:
                platform.refresh_policy()  # a version adopted meanwhile
                platform.catch_up()  # keeps the read model current while another process ingests
            except Exception as e:  # noqa: BLE001 - e.g. SQLite busy under a concurrent ingest: next time
                logging.getLogger("recovery.metrics").warning(json.dumps(
                    {"event": "catch_up_failed", "error": f"{type(e).__name__}: {e}"[:300]}))
            stopping.wait(args.interval)
    finally:
        server.stop()
        platform.close()
    return 0


def cmd_dlq_replay(args: argparse.Namespace) -> int:
    from consumers.dlq import replay_dead_letters

    settings = args.settings.kafka()
    sent = replay_dead_letters(settings)
    print(f"replayed {sent} dead letters from {settings.dlq_topic} to {settings.topic}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recovery", description="Service recovery platform")
    parser.add_argument("--debug", action="store_true", help="show the traceback of a failure, not one line")
    sub = parser.add_subparsers(dest="command", required=True)

    ingest = sub.add_parser("ingest", help="ingest a JSONL file of SPEC §2 envelopes")
    ingest.add_argument("file")
    ingest.add_argument("--batch-size", type=int, default=1000)
    ingest.add_argument("--retry-refused", action="store_true",
                        help="evaluate lines refused before again (after a fix), "
                             "instead of counting them as duplicates")
    ingest.set_defaults(func=cmd_ingest)

    report = sub.add_parser("report", help="KPI report (SPEC §4-5)")
    report.add_argument("--from", dest="start", type=_date)
    report.add_argument("--to", dest="end", type=_date)
    report.add_argument("--by", choices=["region", "unit", "tier", "category", "channel"])
    report.add_argument("--format", choices=["table", "json"], default="table")
    report.add_argument("--as-of", type=_moment, help="the report as it stood then: from the events recorded "
                        "up to that instant (ISO 8601; no offset = policy time zone)")
    report.set_defaults(func=cmd_report)

    history = sub.add_parser("history", help="one complaint's (or case's) events and its state as of a moment")
    history.add_argument("complaint_id")
    history.add_argument("--as-of", type=_moment, help="only events recorded up to that instant (ISO 8601)")
    history.add_argument("--format", choices=["table", "json"], default="table")
    history.set_defaults(func=cmd_history)

    audit = sub.add_parser("audit", help="tamper evidence")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser("verify", help="re-walk the log against its hash chains; exit 1 on any problem")
    verify.add_argument("--format", choices=["table", "json"], default="table")
    verify.add_argument("--expect-head", help="a head printed by an earlier verification (kept outside the "
                        "database): fail unless it is still in the chain")
    verify.set_defaults(func=cmd_audit_verify)

    export = sub.add_parser("export", help="every recorded event, with its hash, for external audit tools")
    export.add_argument("--from", dest="start", type=_date, help="first recording date (policy time zone)")
    export.add_argument("--to", dest="end", type=_date, help="last recording date, inclusive")
    export.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    export.add_argument("--output", help="a file (default: standard output)")
    export.set_defaults(func=cmd_export)

    import_ = sub.add_parser("import", help="load a whole export into an empty store (hashes checked first)")
    import_.add_argument("file")
    import_.add_argument("--format", choices=["jsonl", "csv"], help="default: by the file's extension")
    import_.set_defaults(func=cmd_import)

    erase = sub.add_parser("erase", help="crypto-shred a customer's personal data (PIPL): destroy their keys")
    erase.add_argument("customer_id")
    erase.set_defaults(func=cmd_erase)

    rebuild = sub.add_parser("rebuild", help="rebuild the read model from the event log beside the live one, "
                             "then switch readers over in one transaction")
    rebuild.add_argument("--projection", choices=["kpi"], default="kpi")
    rebuild.add_argument("--check", action="store_true", help="build beside the live read model, compare every "
                         "row, print what differs, switch nothing; exit 1 on any difference")
    rebuild.set_defaults(func=cmd_rebuild)

    pol = sub.add_parser("policy", help="policy versions (SPEC §3.5): adopt, list, show, check")
    pol_sub = pol.add_subparsers(dest="policy_command", required=True)
    adopt = pol_sub.add_parser("adopt", help="record a new policy version in the log")
    adopt.add_argument("file")
    adopt.add_argument("--effective-from", required=True, type=_moment,
                       help="when it takes effect (ISO 8601 with offset); not before the latest recorded event")
    adopt.add_argument("--by", default=os.environ.get("USER") or "operator", help="who adopts it (default: $USER)")
    adopt.set_defaults(func=cmd_policy_adopt)
    listing = pol_sub.add_parser("list", help="every adopted version")
    listing.add_argument("--format", choices=["table", "json"], default="table")
    listing.set_defaults(func=cmd_policy_list)
    show = pol_sub.add_parser("show", help="the version in force at a moment (default: now), as adopted")
    show.add_argument("--at", type=_moment)
    show.set_defaults(func=cmd_policy_show)
    check_ = pol_sub.add_parser("check", help="validate a policy file; every error names the bad key")
    check_.add_argument("file")
    check_.set_defaults(func=cmd_policy_check)

    serve = sub.add_parser("serve", help="consume Kafka, keep projections, relay the outbox, watch deadlines")
    serve.set_defaults(func=cmd_serve)

    relay = sub.add_parser("relay", help="publish recorded events to Kafka (the outbox relay alone)")
    relay.add_argument("--parent", type=int, help=argparse.SUPPRESS)  # serve's child: stops when serve is gone
    relay.set_defaults(func=cmd_relay)

    metrics = sub.add_parser("metrics", help="serve /metrics, /healthz, /readyz over the store (no Kafka)")
    metrics.add_argument("--port", type=int, default=9477)
    metrics.add_argument("--host", default="127.0.0.1")
    metrics.add_argument("--interval", type=float, default=5.0, help="seconds between read-model catch-ups")
    metrics.set_defaults(func=cmd_metrics)

    dlq = sub.add_parser("dlq", help="dead-letter topic tools")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True)
    replay = dlq_sub.add_parser("replay", help="re-send dead letters to the inbound topic")
    replay.set_defaults(func=cmd_dlq_replay)

    demo = sub.add_parser("demo", help="generate a synthetic quarter, ingest it, print the report")
    demo.add_argument("--dir", default="demo-data")
    demo.add_argument("--seed", type=int, default=2026)
    demo.add_argument("--complaints", type=int, default=6000)
    demo.add_argument("--live", action="store_true", help="play the generated quarter to the inbound topic "
                      "from now on, stamped with the time each envelope is sent, until SIGTERM/SIGINT")
    demo.add_argument("--rate", type=float, default=20.0, help="with --live: events per second at most")
    demo.add_argument("--speed", type=float, default=60.0, help="with --live: generated time per real time")
    demo.set_defaults(func=cmd_demo)

    up_ = sub.add_parser("up", help="start PostgreSQL, a Kafka-protocol broker, serve, Prometheus and a live "
                         "feeder on this machine, in the background (.run/: logs, pid files)")
    up_.set_defaults(func=cmd_up)
    down_ = sub.add_parser("down", help="stop what `recovery up` started (by the pids recorded under .run/)")
    down_.set_defaults(func=cmd_down)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging()
    try:
        args.settings = Settings.from_env()  # the one reading of RECOVERY_*, passed down from here
        return args.func(args)
    except (PolicyError, ValueError, PathUnusable, StoreUnavailable, CannotStart) as e:
        if args.debug:
            raise
        prefix = "invalid policy: " if isinstance(e, PolicyError) else ""
        print(f"recovery: {prefix}{e}", file=sys.stderr)
        return EXIT_UNREACHABLE if isinstance(e, StoreUnavailable) else EXIT_UNUSABLE


if __name__ == "__main__":
    sys.exit(main())
