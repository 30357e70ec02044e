"""The agent: one poller, one thread per slot, an outbox thread, and a main loop that supervises.

Shape as in rq/arq: signal handlers only set state; the main loop acts on it; `request_stop` is
the one shutdown path used by signals, the CLI and tests. The agent can run in-process (tests call
`run()` in a thread and `request_stop()`), or as the `morag-agent run` daemon under systemd.

One owner per concern: `SlotBudget` counts the slots (reserved by a poll, held by a job until its
result is spooled), `RetryPolicy` (on the client) holds every retry limit, and the deliverer's
`on_final` (`_job_finished`) is the one notice that a job is finished.
"""

from __future__ import annotations

import dataclasses
import queue
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from morag_fleet import __version__
from morag_fleet.agent.cancel import CancelDesk
from morag_fleet.agent.delivery import BackgroundDelivery, Deliverer, DeliveryOutcome
from morag_fleet.agent.diskguard import DiskGuard
from morag_fleet.agent.drain import DrainState
from morag_fleet.agent.journal import Journal, JournalEntry
from morag_fleet.agent.leases import LeaseKeeper
from morag_fleet.agent.poller import Poller
from morag_fleet.agent.recovery import Recovery
from morag_fleet.agent.runner import ABORTED_REASON, ActiveJob, JobRunner
from morag_fleet.agent.selftest import selftest_verdict
from morag_fleet.agent.slotbudget import SlotBudget
from morag_fleet.agent.slots import SlotProcess
from morag_fleet.agent.systemd import SystemdNotifier
from morag_fleet.agent.telemetry import make_publisher
from morag_fleet.convert.registry import capabilities_in_child
from morag_fleet.jobs.client import MoragClient
from morag_fleet.jobs.models import Job, JobResult
from morag_fleet.log import get_logger, register_secret
from morag_fleet.settings import AgentSettings

log = get_logger(__name__)
SUPERVISE_INTERVAL = 0.5
FLUSH_SECONDS = 10.0  # at least this long for the last deliveries at shutdown, whatever the grace
NEXT_JOB_WAIT = 0.2  # how often an idle slot thread looks whether the agent is stopping


class Agent:
    def __init__(self, settings: AgentSettings, *, install_signals: bool = False) -> None:
        self.settings = settings
        register_secret(settings.api_key)
        self.stopping = threading.Event()  # drain: no new claims
        self.aborting = threading.Event()  # hard stop: give up running jobs
        self.paused = threading.Event()  # drained by the controller; resumable
        # claims also wait while temp_dir's disk is full; the poller reads this as its pause
        self.disk = DiskGuard(settings.temp_dir, settings.min_free_disk_mb, self.paused,
                              self._disk_changed)
        self._install_signals = install_signals
        self._signals_seen = 0
        # refused/discarded: results the server would not keep (the job was another's by then)
        self._counters = {"claimed": 0, "completed": 0, "failed": 0, "spooled": 0, "refused": 0,
                          "discarded": 0}
        self._counter_lock = threading.Lock()
        self._active: dict[str, ActiveJob] = {}
        self._work: queue.Queue[Job] = queue.Queue()  # every job in it holds a slot
        self.budget = SlotBudget(settings.max_concurrent_jobs)
        self._threads: list[threading.Thread] = []
        # The client's own retry sleeps end when this is set: after the last flush at shutdown.
        self._client_stop = threading.Event()
        self.client = MoragClient(settings, stop=self._client_stop)
        self.journal = Journal(settings.state_dir)
        self.drain = DrainState(settings.state_dir, self.paused)
        self.cancels = CancelDesk(self._active, self.journal)
        self._spooled_at: dict[str, float] = {}  # job id -> when its result was spooled
        self.leases = LeaseKeeper(self.client, self._client_stop)  # renews until delivered
        self.deliverer = Deliverer(self.client, self.journal, on_final=self._job_finished)
        self.unavailable: dict[str, str] = {}  # content type -> why its converter cannot run
        self.content_types = self._usable_content_types()
        self.slots = [
            SlotProcess(i, settings.__dict__.copy(), self._gpu_for(i),
                        settings.slot_memory_limit_mb)
            for i in range(settings.max_concurrent_jobs)
        ]
        self.selftest = self._selftest()
        self.content_types = [t for t in self.content_types
                              if self.selftest.get(t, {}).get("ok", True)]
        self._selftest_verdict = selftest_verdict(self.selftest)  # in every heartbeat
        self.publisher = make_publisher(settings, self.snapshot, self.on_command, self._hello())
        self.delivery = BackgroundDelivery(self.deliverer, settings.max_concurrent_jobs)
        self.runner = JobRunner(settings, self.client, self.journal, self.delivery,
                                self.disk.watch(self._job_event), self.aborting,
                                self.content_types)
        self.poller = Poller(settings, self.client, self.content_types, self.budget,
                             self._claimed, self._claimed_malformed, self.stopping, self.disk,
                             helpers=len(self.slots) - 1)
        self.recovery = Recovery(settings, self.journal, self.client, self.leases,
                                 self.deliverer, self._rerun, self._give_up,
                                 self.publisher.agent_event)
        self.notifier = SystemdNotifier()
        self.ready = threading.Event()

    # ----- lifecycle ---------------------------------------------------------------------------
    def run(self) -> int:
        """The agent's whole life, top to bottom; blocks until it has stopped and returns the
        process exit code."""
        self._start()
        self.recovery.run()  # what a previous run left: damage, interrupted jobs, outbox
        self._start_threads()
        self._announce_ready()
        while not self.stopping.is_set():
            self._supervise()
            self.stopping.wait(SUPERVISE_INTERVAL)
        return self._shutdown()

    def request_stop(self, abort: bool = False) -> None:
        """The one shutdown path. First call drains; `abort=True` (or a second call from a
        signal) gives up running jobs and reports them failed."""
        if abort:
            self.aborting.set()
        self.stopping.set()

    def _start(self) -> None:
        if self._install_signals:
            self._install_signal_handlers()
        self.settings.temp_dir.mkdir(parents=True, exist_ok=True)
        self.publisher.start()
        self.publisher.agent_event("started", version=__version__)
        for name, result in self.selftest.items():
            if not result["ok"]:
                self.publisher.agent_event("selftest_failed", content_type=name,
                                           reason=result["reason"])
        log.info("agent_started", worker_id=self.settings.worker_id, version=__version__,
                 content_types=self.content_types, slots=len(self.slots),
                 api=self.settings.api_base_url)

    def _install_signal_handlers(self) -> None:
        def handler(signum: int, _frame: Any) -> None:
            self._signals_seen += 1
            self.request_stop(abort=self._signals_seen > 1)

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def _start_threads(self) -> None:
        for slot in self.slots:
            self._spawn(self._slot_loop, f"slot-{slot.index}", slot)
        self._spawn(self._outbox_loop, "outbox")
        self._spawn(self.leases.run, "leases")
        self.poller.start(self._spawn)

    def _spawn(self, target: Callable[..., None], name: str, *args: Any) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)
        return thread

    def _announce_ready(self) -> None:
        self.notifier.notify("READY=1\nSTATUS=polling")
        self.ready.set()

    def _supervise(self) -> None:
        """Feed the watchdog only while every worker thread is alive; end a drain whose time is
        up."""
        if self.drain.expire():
            self.publisher.agent_event("resumed", reason="the drain's time was up")
        alive = all(t.is_alive() for t in self._threads)
        if alive:
            self.notifier.notify("WATCHDOG=1")
        else:
            dead = [t.name for t in self._threads if not t.is_alive()]
            log.error("thread_died", threads=dead)

    def _shutdown(self) -> int:
        """Stop claiming, let running jobs finish within the grace (or abort them), deliver
        what can be delivered, close."""
        self._stop_claiming()
        deadline = time.monotonic() + self.settings.shutdown_grace
        self.poller.join(timeout=max(0.0, deadline - time.monotonic()))
        self._wait_for_jobs(deadline)
        self._last_deliveries(max(deadline, time.monotonic() + FLUSH_SECONDS))
        self._close()
        return 0

    def _stop_claiming(self) -> None:
        # A held long poll is cut off now, so the server does not hand it a job that this agent
        # would have to run or leave unreported.
        self.client.close_polls()
        log.info("agent_draining", active=len(self._active), grace_s=self.settings.shutdown_grace)
        self.notifier.notify("STOPPING=1\nSTATUS=draining")
        self.publisher.agent_event("draining", active=len(self._active))

    def _wait_for_jobs(self, deadline: float) -> None:
        """Running and queued jobs finish until `deadline`; after it (or on abort) the running
        ones are aborted and the queued ones failed, each with the abort reason."""
        while self._active or not self._work.empty():
            if self.aborting.is_set() or time.monotonic() > deadline:
                self.aborting.set()
                break
            time.sleep(0.1)
        if self.aborting.is_set():
            self._abort_queued()
            for thread in self._threads:
                thread.join(timeout=10)

    def _last_deliveries(self, deadline: float) -> None:
        """One more delivery attempt for each waiting result; what stays is delivered next
        start. The client's retry waits end at `deadline`."""
        timer = threading.Timer(deadline - time.monotonic(), self._client_stop.set)
        timer.daemon = True
        timer.start()
        self.delivery.wait_idle(max(0.0, deadline - time.monotonic()))
        for entry in self.journal.outbox():
            if time.monotonic() > deadline:
                break
            self.deliverer.deliver(entry.job_id)
        timer.cancel()
        self._client_stop.set()

    def _close(self) -> None:
        self.delivery.close()
        for slot in self.slots:
            slot.stop()
        depth = self.journal.outbox_depth()
        log.info("agent_stopped", aborted=self.aborting.is_set(), outbox_depth=depth,
                 counters=self.counters())
        self.publisher.agent_event("stopped", outbox_depth=depth)
        self.publisher.close()
        self.client.close()
        self.journal.close()

    # ----- controller commands -----------------------------------------------------------------
    def on_command(self, name: str, body: dict[str, Any]) -> None:
        """Controller commands only set state (the poller and the runners read it), and say
        what they did in an event the controller records."""
        if name == "cancel":
            answer = self.cancels.request(body.get("job_id"), body.get("note"),
                                          body.get("grace"))
            log.info("controller_command", command=name, **answer.fields())
            self.publisher.agent_event("cancel", **answer.fields())
            return
        if name == "drain":
            self.drain.drain(body.get("note"), body.get("until"))
        elif name == "resume":
            self.drain.resume()
        log.info("controller_command", command=name, note=self.drain.note,
                 until=self.drain.until)
        if self.paused.is_set():
            self.publisher.agent_event("paused", note=self.drain.note, until=self.drain.until)
        else:
            self.publisher.agent_event("resumed")

    def _disk_changed(self, full: bool, free: int) -> None:
        self.publisher.agent_event("paused" if full else "resumed",
                                   reason=self.disk.reason, free_mb=free // 2**20)

    # ----- one job, from claim to its end ------------------------------------------------------
    def _claimed(self, job: Job) -> bool:
        """The poller's claim, on a slot reserved for it; False for a job the journal has
        already (the poller gives the slot back)."""
        if not self.journal.record_claim(job.job_id, job.content_type, dataclasses.asdict(job)):
            log.warning("duplicate_claim", job_id=job.job_id)
            return False
        self._count("claimed")
        self.leases.hold(job.job_id, job.lease_seconds)
        log.info("job_claimed", job_id=job.job_id, content_type=job.content_type)
        self.publisher.job_event(job.job_id, "claimed", content_type=job.content_type)
        self._work.put(job)
        return True

    def _rerun(self, job: Job) -> None:
        """A job taken back at start; it holds a slot like a claimed one."""
        self._count("claimed")
        self.budget.take()
        self._work.put(job)

    def _claimed_malformed(self, job_id: str, reason: str) -> None:
        """A poll answer named a job but could not be used: report it failed, never drop it."""
        if not self.journal.record_claim(job_id, "unknown", {"job_id": job_id}):
            return
        self._count("claimed")
        log.error("job_malformed", job_id=job_id, reason=reason)
        self._give_up(job_id, reason)

    def _slot_loop(self, slot: SlotProcess) -> None:
        """One slot thread: take the next job, run it, free its slot; until the agent stops."""
        while (job := self._next_job()) is not None:
            try:
                self._run_job(job, slot)
            finally:
                self.budget.release()

    def _next_job(self) -> Job | None:
        """None once the agent is stopping and no job is queued or can still be claimed."""
        while True:
            try:
                return self._work.get(timeout=NEXT_JOB_WAIT)
            except queue.Empty:
                if self.stopping.is_set() and self._work.empty() and not self.poller.alive:
                    return None

    def _run_job(self, job: Job, slot: SlotProcess) -> None:
        active = ActiveJob(job, slot.index)
        self.cancels.attach(active)
        try:
            ok = self.runner.run(active, slot)
            self._count("completed" if ok else "failed")
        except Exception as exc:  # a bug here must not lose the job
            log.exception("runner_error", job_id=job.job_id)
            self._give_up(job.job_id, f"agent error: {type(exc).__name__}: {exc}")
        finally:
            self._active.pop(job.job_id, None)

    def _give_up(self, job_id: str, reason: str) -> None:
        """The job ends failed with `reason`, through the same outbox as every result."""
        self._count("failed")
        self.journal.spool_result(job_id, JobResult(False, error_message=reason).to_json())
        self.publisher.job_event(job_id, "spooled", success=False, error=reason)
        self.disk.note_result(reason)

    def _abort_queued(self) -> None:
        """Hard stop: jobs not started yet are failed with the abort reason too."""
        while True:
            try:
                job = self._work.get_nowait()
            except queue.Empty:
                break
            self._give_up(job.job_id, ABORTED_REASON)
            self.budget.release()

    def _outbox_loop(self) -> None:
        """Retries results that could not be delivered at once, until the agent aborts or
        stops with nothing left to send."""
        while not self.aborting.is_set():
            for entry in self.journal.outbox(due_only=True):
                if self.aborting.is_set():
                    return
                self.deliverer.deliver(entry.job_id)
            if self.aborting.wait(1.0) or (self.stopping.is_set() and not self._active
                                          and self.journal.outbox_depth() == 0):
                return

    def _job_event(self, job_id: str, phase: str, **fields: Any) -> None:
        """The runners' events; notes when a result is spooled, to time its delivery."""
        if phase == "spooled":
            self._spooled_at[job_id] = time.monotonic()
        self.publisher.job_event(job_id, phase, **fields)

    def _job_finished(self, entry: JournalEntry, outcome: DeliveryOutcome) -> None:
        """The one notice of a job's end, once its delivery is over, from whichever thread
        delivered it (a result sent by the outbox after an outage ends its job as much as one
        sent at once): the lease is let go, the log and the controller are told."""
        result = entry.result or {}
        self.leases.release(entry.job_id)
        log.info("job_finished", job_id=entry.job_id, content_type=entry.content_type,
                 success=bool(result.get("success")), error=result.get("error_message"),
                 duration_s=result.get("processing_time"), delivered=outcome.kept,
                 outcome=outcome.note)
        timing = self._deliver_seconds(entry.job_id)
        if outcome.refused or outcome.discarded:
            kind = "refused" if outcome.refused else "discarded"
            self._count(kind)
            self.publisher.job_event(entry.job_id, f"result_{kind}", error=outcome.note)
        elif outcome.dropped:
            self.publisher.job_event(entry.job_id, "failed", error=outcome.note,
                                     content_type=entry.content_type)
        else:
            self.publisher.job_event(entry.job_id,
                                     "completed" if result.get("success") else "failed",
                                     error=result.get("error_message"),
                                     duration=result.get("processing_time"),
                                     content_type=entry.content_type, **timing)

    def _deliver_seconds(self, job_id: str) -> dict[str, float]:
        """{deliver_s} for a result spooled by this run (one from a previous run has no
        spool time here)."""
        spooled = self._spooled_at.pop(job_id, None)
        return {} if spooled is None else {"deliver_s": round(time.monotonic() - spooled, 3)}

    # ----- views -------------------------------------------------------------------------------
    def _count(self, name: str) -> None:
        with self._counter_lock:
            self._counters[name] += 1

    def counters(self) -> dict[str, int]:
        with self._counter_lock:
            return dict(self._counters)

    def state(self) -> str:
        if self.stopping.is_set():
            return "draining"
        if self.disk.is_set() and not self.budget.polling:
            return "paused"  # only once no poll in flight can still bring a claim
        return "busy" if self._active else "idle"

    def snapshot(self) -> dict[str, Any]:
        """The heartbeat body; called from the telemetry thread."""
        active = [a.view() for a in list(self._active.values())]
        state = self.state()
        reason = (self.disk.reason or "drained") if state == "paused" else None
        return {"state": state, "state_reason": reason, "slots_used": len(active),
                "slots_total": len(self.slots),
                "active_jobs": active, "counters": self.counters(),
                "outbox_depth": self.journal.outbox_depth(), "selftest": self._selftest_verdict,
                **self.drain.view()}

    def _hello(self) -> dict[str, Any]:
        import socket

        from morag_fleet.agent.gpu import gpu_inventory

        return {"version": __version__, "host": socket.gethostname(),
                "content_types": self.content_types, "slots": self.settings.max_concurrent_jobs,
                "converters": {k: self.settings.converters.get(k, "default")
                               for k in self.content_types},
                "gpus": gpu_inventory(), "selftest": self.selftest,
                "unavailable": self.unavailable}

    def _usable_content_types(self) -> list[str]:
        """Poll only for types this host can convert; the others are logged with the reason."""
        usable = []
        for content_type, availability in capabilities_in_child(self.settings).items():
            if availability.ok:
                usable.append(content_type)
            else:
                self.unavailable[content_type] = str(availability.reason)
                log.warning("converter_unavailable", content_type=content_type,
                            reason=availability.reason)
        return usable

    def _selftest(self) -> dict[str, dict[str, Any]]:
        """Each usable type converts its shipped sample before the agent is ready. It runs in
        the agent's own slots, so the models it loads stay loaded for the first jobs."""
        if not self.settings.selftest or not self.content_types:
            return {}
        from morag_fleet.agent.selftest import run_selftest

        started = time.monotonic()
        results = run_selftest(self.settings, self.content_types, self.slots)
        for name, result in results.items():
            if not result.ok:
                log.error("selftest_failed", content_type=name, reason=result.reason,
                          seconds=result.seconds)
        log.info("selftest_done", seconds=round(time.monotonic() - started, 2),
                 seconds_by_type={n: r.seconds for n, r in results.items()},
                 failed=[n for n, r in results.items() if not r.ok])
        return {name: result.as_dict() for name, result in results.items()}

    def _gpu_for(self, index: int) -> str | None:
        gpus = self.settings.gpus
        return gpus[index % len(gpus)] if gpus else None
