"""Lambda runtime of the monitoring plane: runs a deployed zip's Python handler in warm worker processes."""

from __future__ import annotations

import collections
import io
import itertools
import json
import logging
import math
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import weakref
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

__all__ = ["FunctionSpec", "InvokeResult", "LambdaRuntime", "UnsupportedRuntime", "InvalidRequestContent",
           "RuntimeClosed"]

log = logging.getLogger(__name__)

_HARNESS_ROOT = str(Path(__file__).resolve().parents[2])
_PYTHON_RUNTIME = re.compile(r"python3\.\d+\Z")
_INIT_TIMEOUT_S = 10.0  # AWS's init-phase limit, in real seconds: import cost does not shrink with the clock
_ERRORS_KEPT = 200
_EVENT_THREADS = 32


class UnsupportedRuntime(ValueError):
    """The function's runtime is not Python; the embedded plane runs Python handlers only."""


class InvalidRequestContent(ValueError):
    """The payload is not JSON (AWS: InvalidRequestContentException, HTTP 400)."""


class RuntimeClosed(RuntimeError):
    """The runtime was closed while the invocation was waiting or running."""


@dataclass(frozen=True)
class FunctionSpec:
    """What the runtime needs to know about a deployed function, read from moto by the plane."""

    name: str
    arn: str
    handler: str  # "module.func"
    runtime: str  # "python3.11", ...; the handler runs on this interpreter whatever the minor version
    code_zip: bytes
    code_sha256: str
    environment: dict[str, str]  # Environment.Variables
    timeout_s: float  # enforced as given: the caller scales AWS seconds to emulator seconds
    memory_mb: int
    credentials: dict[str, str]  # AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN of the role
    region: str


@dataclass
class InvokeResult:
    """One invocation as AWS reports it: status, payload, X-Amz-Function-Error and the log stream text."""

    status: int  # 200 RequestResponse, 202 Event
    payload: bytes  # the handler's JSON return value, or AWS's error object
    function_error: str | None  # "Unhandled" on an exception, a timeout or a crash
    log: str  # INIT/START/END/REPORT lines around the handler's output; one "\n"-ended line per log event
    request_id: str
    duration_ms: float
    log_stream: str = ""  # the execution environment's stream, "YYYY/MM/DD/[$LATEST]<hex>", as on AWS


class _Timeout(Exception):
    pass


class _Gone(Exception):
    pass


class _Pool:
    """The execution environments of one function configuration (code, handler, runtime, environment)."""

    def __init__(self, fingerprint: tuple, directory: Path):
        self.fingerprint = fingerprint
        self.dir = directory
        self.code_dir = directory / "task"
        self.idle: list[_Worker] = []
        self.live = 0  # workers alive or being started, idle or busy
        self.retired = False
        self._extract_lock = threading.Lock()

    def extract(self, code_zip: bytes) -> None:
        with self._extract_lock:
            if not self.code_dir.exists():
                staging = self.dir / "task.partial"
                with zipfile.ZipFile(io.BytesIO(code_zip)) as archive:
                    archive.extractall(staging)
                staging.rename(self.code_dir)


class _Worker:
    """One worker process (an execution environment) and its two protocol pipes."""

    def __init__(self, pool: _Pool, env: dict[str, str], log_stream: str, provisioned: bool):
        self.log_stream = log_stream
        self.provisioned = provisioned
        self.capture = pool.dir / f"{uuid.uuid4().hex}.out"  # the worker's stdout and stderr
        self.used = False
        self.ready = False  # init finished (a prewarmed worker waits for it before taking invocations)
        self.init_error: dict | None = None
        self.init_log = ""
        self.init_ms = 0.0
        self.max_rss_mb = 0
        self._lock = threading.Lock()
        self._buf = bytearray()
        self.started = time.monotonic()
        worker_in, self._to_worker = os.pipe()
        self._from_worker, worker_out = os.pipe()
        try:
            with open(self.capture, "a+b") as out:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "harness.emulator.lambda_worker", str(worker_in), str(worker_out)],
                    cwd=pool.code_dir, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                    pass_fds=(worker_in, worker_out), start_new_session=True)
        except BaseException:
            os.close(self._to_worker)
            os.close(self._from_worker)
            raise
        finally:
            os.close(worker_in)
            os.close(worker_out)
        self._poll = select.poll()  # not select(): no FD_SETSIZE limit in a long-lived server process
        self._poll.register(self._from_worker, select.POLLIN)
        self._closed = False

    def alive(self) -> bool:
        try:  # WNOWAIT: look without reaping, so the process group id stays ours until dispose()
            return os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None
        except ChildProcessError:
            return False

    def wait_ready(self, timeout_s: float) -> None:
        header, _ = self.recv(time.monotonic() + timeout_s)
        self.init_error, self.init_log, self.max_rss_mb = header["init_error"], header["log"], header["max_rss_mb"]
        self.init_ms = (time.monotonic() - self.started) * 1000  # interpreter start-up and handler import

    def send(self, header: dict, body: bytes) -> None:
        header["body"] = len(body)
        view = memoryview(json.dumps(header).encode() + b"\n" + body)
        try:
            while view:
                view = view[os.write(self._to_worker, view):]
        except OSError:
            raise _Gone from None

    def recv(self, deadline: float) -> tuple[dict, bytes]:
        while True:
            newline = self._buf.find(b"\n")
            if newline >= 0:
                header = json.loads(self._buf[:newline])
                end = newline + 1 + header["body"]
                if len(self._buf) >= end:
                    body = bytes(self._buf[newline + 1:end])
                    del self._buf[:end]
                    return header, body
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._poll.poll(math.ceil(remaining * 1000)):
                raise _Timeout
            chunk = os.read(self._from_worker, 1 << 20)
            if not chunk:
                raise _Gone
            self._buf += chunk

    def signal_kill(self) -> None:
        """Kill the process group (the handler's own subprocesses too); safe from any thread."""
        with self._lock:
            if self.proc.returncode is None:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def exit_description(self) -> str:
        """How the process ended, worded like AWS ("exit status 1", "signal: killed"); kills it after 1 s."""
        deadline = time.monotonic() + 1.0
        while (info := os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)) is None:
            if time.monotonic() > deadline:
                self.signal_kill()
                info = os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOWAIT)
                break
            time.sleep(0.005)
        if info.si_code == os.CLD_EXITED:
            return f"exit status {info.si_status}"
        names = {signal.SIGKILL: "killed", signal.SIGSEGV: "segmentation fault", signal.SIGABRT: "aborted"}
        return "signal: " + names.get(info.si_status, signal.Signals(info.si_status).name.lower())

    def read_capture(self) -> str:
        """What the worker printed and did not report itself (it was killed or crashed)."""
        try:
            return self.capture.read_bytes().decode("utf-8", "replace")
        except OSError:
            return ""

    def dispose(self) -> None:
        """Kill, reap and close; only the thread that owns the worker (or nobody) may call it."""
        self.signal_kill()
        with self._lock:
            self.proc.wait()
            if not self._closed:
                self._closed = True
                os.close(self._to_worker)
                os.close(self._from_worker)
        self.capture.unlink(missing_ok=True)


class LambdaRuntime:
    """Runs Python Lambda handlers in warm worker processes that call back into the embedded endpoint.

    One worker process per concurrent execution of a function configuration, reused while the
    configuration is unchanged (module-level code runs once per worker, as in a warm environment).
    POSIX only (process groups, poll).
    """

    def __init__(self, endpoint_url: str, *,
                 on_log: Callable[[FunctionSpec, str, InvokeResult], None] | None = None,
                 max_workers_per_function: int = 4, work_dir: Path | None = None):
        """on_log(spec, request_id, result) is called after every invocation and every retry."""
        if max_workers_per_function < 1:
            raise ValueError("max_workers_per_function must be at least 1")
        self._endpoint_url = endpoint_url
        self._on_log = on_log
        self._max_workers = max_workers_per_function
        self._root = Path(tempfile.mkdtemp(prefix="gameday-lambda-", dir=work_dir))
        self._remove_root = weakref.finalize(self, shutil.rmtree, self._root, True)
        self._cond = threading.Condition()
        self._pools: dict[str, _Pool] = {}
        self._workers: set[_Worker] = set()
        self._live = 0
        self._pending_events = 0
        self._pending_by_function: collections.Counter[str] = collections.Counter()
        self._prewarming: list[threading.Thread] = []
        self._closed = False
        self._seq = itertools.count(1)
        self._errors: collections.deque[tuple[str, InvokeResult]] = collections.deque(maxlen=_ERRORS_KEPT)
        self._events = ThreadPoolExecutor(max_workers=_EVENT_THREADS, thread_name_prefix="lambda-event")

    def prewarm(self, spec: FunctionSpec) -> None:
        """Start one worker in the background if the function has none (like provisioned concurrency)."""
        _check_runtime(spec)
        thread = threading.Thread(target=self._prewarm, args=(spec,), daemon=True, name=f"lambda-prewarm-{spec.name}")
        self._prewarming.append(thread)
        thread.start()

    def wait_warm(self, timeout: float) -> bool:
        """Wait for the workers prewarm() started to be ready; False if one is still starting at the deadline."""
        deadline = time.monotonic() + timeout
        for thread in list(self._prewarming):
            thread.join(max(deadline - time.monotonic(), 0))
        self._prewarming = [t for t in self._prewarming if t.is_alive()]
        return not self._prewarming

    def invoke(self, spec: FunctionSpec, payload: bytes) -> InvokeResult:
        """RequestResponse invocation: run the handler now and return what AWS would."""
        _check_runtime(spec)
        _check_payload(payload)
        return self._run(spec, payload, 200, str(uuid.uuid4()))

    def invoke_async(self, spec: FunctionSpec, payload: bytes, *, max_retries: int = 2) -> None:
        """Event invocation: queue it; a function error is retried up to max_retries times (AWS default 2)."""
        _check_runtime(spec)
        _check_payload(payload)
        with self._cond:
            if self._closed:
                raise RuntimeClosed("the Lambda runtime is closed")
            self._pending_events += 1
            self._pending_by_function[spec.arn] += 1
        self._events.submit(self._run_event, spec, payload, max_retries)

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every queued Event invocation (retries included) has finished; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending_events == 0, timeout)

    def wait_idle(self, function_arn: str, timeout: float) -> bool:
        """Wait until no Event invocation of the function is queued or running; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending_by_function[function_arn], timeout)

    def errors(self) -> list[tuple[str, InvokeResult]]:
        """Recent failed invocations as (function name, result), oldest first."""
        return list(self._errors)

    def forget(self, function_arn: str) -> None:
        """Stop the function's workers (deleted or updated); invocations in flight finish first."""
        with self._cond:
            pool = self._pools.pop(function_arn, None)
            doomed = self._retire_locked(pool) if pool else []
        for worker in doomed:
            self._discard(pool, worker)

    def close(self) -> None:
        """Stop every worker, in flight or idle, and remove the temporary directories; idempotent."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            doomed = [(pool, worker) for pool in self._pools.values() for worker in self._retire_locked(pool)]
            self._pools.clear()
            busy = list(self._workers)
            self._cond.notify_all()
        for pool, worker in doomed:
            self._discard(pool, worker)
        for worker in busy:
            worker.signal_kill()  # their invoking threads see the worker gone and dispose of it
        with self._cond:
            self._cond.wait_for(lambda: self._live == 0, timeout=10)
        self._events.shutdown(wait=True, cancel_futures=True)
        with self._cond:
            self._pending_events = 0  # cancelled events never ran
            self._pending_by_function.clear()
            self._cond.notify_all()
        self._remove_root()

    def __enter__(self) -> LambdaRuntime:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _run_event(self, spec: FunctionSpec, payload: bytes, max_retries: int) -> None:
        request_id = str(uuid.uuid4())  # AWS keeps the request id across the retries of one event
        try:
            for attempt in range(max_retries + 1):
                if attempt:
                    time.sleep(0.01 * attempt)  # AWS waits about 1 then 2 minutes; time is scaled here, keep it short
                if self._run(spec, payload, 202, request_id).function_error is None:
                    break
        except RuntimeClosed:
            pass
        except Exception:
            log.exception("Event invocation of %s failed in the runtime", spec.name)
        finally:
            with self._cond:
                self._pending_events -= 1
                self._pending_by_function[spec.arn] -= 1
                self._cond.notify_all()

    def _run(self, spec: FunctionSpec, payload: bytes, status: int, request_id: str) -> InvokeResult:
        pool, worker = self._acquire(spec)
        keep = False
        try:
            result, keep = self._call(worker, spec, payload, status, request_id)
        finally:
            self._release(pool, worker, keep)
        if result.function_error:
            self._errors.append((spec.name, result))
        if self._on_log is not None:
            try:
                self._on_log(spec, result.request_id, result)
            except Exception:
                log.exception("on_log failed for %s", spec.name)
        return result

    def _call(self, worker: _Worker, spec: FunctionSpec, payload: bytes, status: int,
              request_id: str) -> tuple[InvokeResult, bool]:
        """Run one invocation on an owned worker; returns the result and whether the worker stays warm."""
        report = _Report(spec, request_id, status, worker.log_stream)
        if not worker.used:
            worker.used = True
            started = time.monotonic()
            try:
                if not worker.ready:
                    worker.wait_ready(_INIT_TIMEOUT_S)
            except _Timeout:
                report.prefix = _init_start(spec)
                return report.timeout(worker, (time.monotonic() - started) * 1000, _INIT_TIMEOUT_S), False
            except _Gone:
                report.prefix = _init_start(spec)
                return report.exited(worker, (time.monotonic() - started) * 1000), False
            report.prefix = _init_start(spec) + worker.init_log
            report.init_ms = None if worker.provisioned else worker.init_ms
            if worker.init_error is not None:  # the environment is discarded: the next invocation inits again
                body = json.dumps(worker.init_error).encode()
                status = f"error\tError Type: {worker.init_error['errorType']}"
                return report.done(body, "Unhandled", "", 0.0, worker.max_rss_mb, status), False
        started = time.monotonic()
        try:
            worker.send({"op": "invoke", "request_id": request_id, "arn": spec.arn,
                         "timeout_ms": int(spec.timeout_s * 1000)}, payload)
            header, body = worker.recv(started + spec.timeout_s)
        except _Timeout:
            return report.timeout(worker, (time.monotonic() - started) * 1000, spec.timeout_s), False
        except _Gone:
            if self._closed:
                raise RuntimeClosed("the Lambda runtime was closed during the invocation") from None
            return report.exited(worker, (time.monotonic() - started) * 1000), False
        duration_ms = (time.monotonic() - started) * 1000
        worker.max_rss_mb = header["max_rss_mb"]
        error = None if header["ok"] else "Unhandled"
        return report.done(body, error, header["log"], duration_ms, worker.max_rss_mb), True

    def _acquire(self, spec: FunctionSpec) -> tuple[_Pool, _Worker]:
        dead: list[tuple[_Pool, _Worker]] = []
        with self._cond:
            while True:
                if self._closed:
                    raise RuntimeClosed("the Lambda runtime is closed")
                pool = self._pool_for_locked(spec)
                while pool.idle:
                    worker = pool.idle.pop()  # the most recently used: the warmest
                    if worker.alive():
                        break
                    dead.append((pool, worker))
                else:
                    worker = None
                if worker is not None:
                    break
                if pool.live < self._max_workers:
                    pool.live += 1
                    self._live += 1
                    break
                self._cond.wait()
        for dead_pool, dead_worker in dead:
            self._discard(dead_pool, dead_worker)
        if worker is None:
            worker = self._spawn(pool, spec, provisioned=False)
        return pool, worker

    def _release(self, pool: _Pool, worker: _Worker, keep: bool) -> None:
        with self._cond:
            if keep and not pool.retired and not self._closed and worker.alive():
                pool.idle.append(worker)
                self._cond.notify_all()
                return
        self._discard(pool, worker)

    def _discard(self, pool: _Pool, worker: _Worker) -> None:
        """Dispose of a worker nobody else holds and give its slot back."""
        worker.dispose()
        with self._cond:
            self._workers.discard(worker)
            self._free_slot_locked(pool)

    def _free_slot_locked(self, pool: _Pool) -> None:
        pool.live -= 1
        self._live -= 1
        if pool.retired and pool.live == 0:
            shutil.rmtree(pool.dir, ignore_errors=True)
        self._cond.notify_all()

    def _spawn(self, pool: _Pool, spec: FunctionSpec, *, provisioned: bool) -> _Worker:
        """Start a worker in a slot already counted in pool.live; frees the slot if it cannot."""
        try:
            pool.extract(spec.code_zip)
            stream = time.strftime("%Y/%m/%d", time.gmtime()) + "/[$LATEST]" + uuid.uuid4().hex
            worker = _Worker(pool, self._environment(spec, pool.code_dir, stream, provisioned), stream, provisioned)
        except BaseException:
            with self._cond:
                self._free_slot_locked(pool)
            raise
        with self._cond:
            self._workers.add(worker)
            closed = self._closed
        if closed:
            self._discard(pool, worker)
            raise RuntimeClosed("the Lambda runtime is closed")
        return worker

    def _prewarm(self, spec: FunctionSpec) -> None:
        with self._cond:
            if self._closed:
                return
            pool = self._pool_for_locked(spec)
            if pool.live:
                return
            pool.live += 1
            self._live += 1
        try:
            worker = self._spawn(pool, spec, provisioned=True)
        except RuntimeClosed:
            return
        except Exception:
            log.exception("Could not prewarm %s", spec.name)
            return
        try:
            # Provisioned concurrency runs init ahead of the first invocation, so wait for it here.
            worker.wait_ready(_INIT_TIMEOUT_S)
            worker.ready = True
        except (_Timeout, _Gone):
            pass  # the first invocation waits again and reports what happened
        self._release(pool, worker, keep=True)

    def _pool_for_locked(self, spec: FunctionSpec) -> _Pool:
        fingerprint = _fingerprint(spec)
        pool = self._pools.get(spec.arn)
        if pool is not None and pool.fingerprint == fingerprint:
            return pool
        if pool is not None:
            for worker in self._retire_locked(pool):  # idle, so no thread reads its pipes
                worker.dispose()
                self._workers.discard(worker)
                self._free_slot_locked(pool)
        directory = self._root / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', spec.name)}-{next(self._seq)}"
        directory.mkdir()
        pool = self._pools[spec.arn] = _Pool(fingerprint, directory)
        return pool

    def _retire_locked(self, pool: _Pool) -> list[_Worker]:
        """Mark the pool retired and hand back its idle workers; busy ones go when released."""
        pool.retired = True
        idle, pool.idle = pool.idle, []
        if pool.live == 0:
            shutil.rmtree(pool.dir, ignore_errors=True)
        return idle

    def _environment(self, spec: FunctionSpec, code_dir: Path, log_stream: str, provisioned: bool) -> dict[str, str]:
        """Built from scratch: nothing of the parent's AWS_* (or other) environment reaches the handler."""
        env = dict(spec.environment)
        env.update({
            "PATH": os.pathsep.join([os.path.dirname(sys.executable), "/usr/local/bin", "/usr/bin", "/bin"]),
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "PYTHONPATH": _HARNESS_ROOT,  # only so `-m harness.emulator.lambda_worker` resolves; the worker drops it
            "LAMBDA_TASK_ROOT": str(code_dir),
            "_HANDLER": spec.handler,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "provisioned-concurrency" if provisioned else "on-demand",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
            "AWS_REGION": spec.region,
            "AWS_DEFAULT_REGION": spec.region,
            "AWS_ENDPOINT_URL": self._endpoint_url,
            # A Lambda has no ~/.aws files and must not wait on EC2 metadata: keep botocore off both.
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            **spec.credentials,
        })
        for name in ("LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH"):  # some Python builds cannot start without them
            if name in os.environ:
                env[name] = os.environ[name]
        return env


class _Report:
    """Assembles an InvokeResult and its log text the way AWS writes them."""

    def __init__(self, spec: FunctionSpec, request_id: str, status: int, log_stream: str):
        self.spec, self.request_id, self.status, self.log_stream = spec, request_id, status, log_stream
        self.prefix = ""  # INIT_START and the init output, on a worker's first invocation
        self.init_ms: float | None = None

    def done(self, payload: bytes, error: str | None, output: str, duration_ms: float, max_rss_mb: int,
             status: str | None = None) -> InvokeResult:
        rid = self.request_id
        if output and not output.endswith("\n"):
            output += "\n"
        # Since August 2025 AWS bills the init phase of on-demand functions too.
        billed = math.ceil(duration_ms + (self.init_ms or 0))
        report = (f"REPORT RequestId: {rid}\tDuration: {duration_ms:.2f} ms\tBilled Duration: {billed} ms\t"
                  f"Memory Size: {self.spec.memory_mb} MB\tMax Memory Used: {max_rss_mb} MB\t")
        if self.init_ms is not None:
            report += f"Init Duration: {self.init_ms:.2f} ms\t"
        if status:
            report += f"Status: {status}\t"
        text = (f"{self.prefix}START RequestId: {rid} Version: $LATEST\n{output}"
                f"END RequestId: {rid}\n{report}\n")
        return InvokeResult(status=self.status, payload=payload, function_error=error, log=text,
                            request_id=rid, duration_ms=duration_ms, log_stream=self.log_stream)

    def timeout(self, worker: _Worker, duration_ms: float, limit_s: float) -> InvokeResult:
        worker.signal_kill()
        message = f"Task timed out after {limit_s:.2f} seconds"
        output = worker.read_capture()
        if output and not output.endswith("\n"):
            output += "\n"
        output += f"{_timestamp()} {self.request_id} {message}\n"
        payload = json.dumps({"errorType": "Sandbox.Timedout",
                              "errorMessage": f"RequestId: {self.request_id} Error: {message}"}).encode()
        return self.done(payload, "Unhandled", output, duration_ms, worker.max_rss_mb, "timeout")

    def exited(self, worker: _Worker, duration_ms: float) -> InvokeResult:
        message = f"RequestId: {self.request_id} Error: Runtime exited with error: {worker.exit_description()}"
        output = worker.read_capture()
        if output and not output.endswith("\n"):
            output += "\n"
        output += f"{message}\nRuntime.ExitError\n"
        payload = json.dumps({"errorType": "Runtime.ExitError", "errorMessage": message}).encode()
        return self.done(payload, "Unhandled", output, duration_ms, worker.max_rss_mb, "error")


def _init_start(spec: FunctionSpec) -> str:
    # The version names the runtime the function declares; the handler runs on the harness's interpreter.
    return f"INIT_START Runtime Version: {spec.runtime.replace('python', 'python:')}.embedded\n"


def _timestamp() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"


def _fingerprint(spec: FunctionSpec) -> tuple:
    # A configuration update gets new environments, as on AWS; credentials are left out, the plane may re-mint them.
    return (spec.code_sha256, spec.handler, spec.runtime, spec.memory_mb, spec.region,
            tuple(sorted(spec.environment.items())))


def _check_runtime(spec: FunctionSpec) -> None:
    if not _PYTHON_RUNTIME.match(spec.runtime or ""):
        raise UnsupportedRuntime(f"{spec.name}: runtime {spec.runtime!r} is not supported by the embedded "
                                 f"Lambda runtime, which runs Python (python3.x) handlers only")


def _check_payload(payload: bytes) -> None:
    if payload:
        try:
            json.loads(payload)
        except ValueError as e:
            raise InvalidRequestContent(f"Could not parse request body into json: {e}") from None
