"""The plane's Lambda runtime runs real handler zips in warm worker processes, like AWS does."""

import base64
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
import tenacity

from harness.emulator.lambdas import (
    FunctionSpec,
    InvalidRequestContent,
    LambdaRuntime,
    RuntimeClosed,
    UnsupportedRuntime,
)

ACCOUNT = "123456789012"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "token"}


def build_zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, source in files.items():
            archive.writestr(name, textwrap.dedent(source))
    return buffer.getvalue()


def make_spec(source: str, *, name: str = "fn", handler: str = "app.handler", timeout_s: float = 5.0,
              environment: dict[str, str] | None = None, runtime: str = "python3.11") -> FunctionSpec:
    code = build_zip({"app.py": source})
    return FunctionSpec(
        name=name, arn=f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{name}", handler=handler, runtime=runtime,
        code_zip=code, code_sha256=base64.b64encode(hashlib.sha256(code).digest()).decode(),
        environment=environment or {}, timeout_s=timeout_s, memory_mb=256, credentials=CREDENTIALS,
        region="eu-west-1")


def eventually(check, timeout: float = 10.0):
    """Retry an asserting check until it passes or the deadline expires (then its AssertionError is raised)."""
    retrying = tenacity.Retrying(stop=tenacity.stop_after_delay(timeout), wait=tenacity.wait_fixed(0.02),
                                 retry=tenacity.retry_if_exception_type(AssertionError), reraise=True)
    return retrying(check)


def is_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")  # a zombie has stopped running
    except FileNotFoundError:
        return True
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False


@pytest.fixture
def logs():
    records = []
    lock = threading.Lock()

    def on_log(spec, request_id, result):
        assert request_id == result.request_id
        with lock:
            records.append((spec.name, result.log_stream, result))

    on_log.records = records
    return on_log


@pytest.fixture
def runtime(tmp_path, logs):
    with LambdaRuntime("http://127.0.0.1:9", on_log=logs, work_dir=tmp_path) as rt:
        yield rt


def test_returns_the_handler_value_with_a_context(runtime):
    spec = make_spec("""
        def handler(event, context):
            return {"event": event, "request_id": context.aws_request_id, "function": context.function_name,
                    "arn": context.invoked_function_arn, "version": context.function_version,
                    "memory": context.memory_limit_in_mb, "group": context.log_group_name,
                    "stream": context.log_stream_name, "remaining": context.get_remaining_time_in_millis()}
    """)

    result = runtime.invoke(spec, json.dumps({"a": [1, 2]}).encode())

    assert (result.status, result.function_error) == (200, None)
    body = json.loads(result.payload)
    assert body["event"] == {"a": [1, 2]}
    assert body["request_id"] == result.request_id
    assert (body["function"], body["arn"], body["version"]) == ("fn", spec.arn, "$LATEST")
    assert (body["memory"], body["group"]) == ("256", "/aws/lambda/fn")
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", body["stream"])
    assert body["stream"] == result.log_stream
    assert 0 < body["remaining"] <= 5000


def test_log_has_prints_and_logging_between_start_end_and_report(runtime, logs):
    spec = make_spec("""
        import logging, sys
        print("cold start")
        logger = logging.getLogger()
        logger.setLevel(logging.INFO)
        def handler(event, context):
            print("hello from the handler")
            print("to stderr", file=sys.stderr)
            logger.info("processed %s", event["n"])
            return "ok"
    """)

    cold = runtime.invoke(spec, b'{"n": 1}')
    warm = runtime.invoke(spec, b'{"n": 2}')

    rid = warm.request_id
    lines = warm.log.splitlines()
    assert lines[0] == f"START RequestId: {rid} Version: $LATEST"
    assert lines[1:3] == ["hello from the handler", "to stderr"]
    assert re.fullmatch(rf"\[INFO\]\t\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}Z\t{rid}\tprocessed 2", lines[3])
    assert lines[4] == f"END RequestId: {rid}"
    assert re.fullmatch(rf"REPORT RequestId: {rid}\tDuration: [\d.]+ ms\tBilled Duration: \d+ ms\t"
                        r"Memory Size: 256 MB\tMax Memory Used: \d+ MB\t", lines[5])
    assert cold.log.startswith("INIT_START Runtime Version: python:3.11")
    assert cold.log.splitlines()[1] == "cold start"
    assert re.search(r"\tInit Duration: [\d.]+ ms\t", cold.log)
    assert "Init Duration" not in warm.log and "cold start" not in warm.log
    streams = {stream for _, stream, _ in logs.records}
    assert [r.request_id for _, _, r in logs.records] == [cold.request_id, warm.request_id] and len(streams) == 1


def test_handler_exception_is_an_unhandled_function_error(runtime):
    spec = make_spec("""
        def fail(value):
            raise ValueError(f"bad value {value}")
        def handler(event, context):
            fail(event["v"])
    """, name="boom")

    result = runtime.invoke(spec, b'{"v": 42}')

    assert (result.status, result.function_error) == (200, "Unhandled")
    error = json.loads(result.payload)
    assert (error["errorType"], error["errorMessage"], error["requestId"]) == (
        "ValueError", "bad value 42", result.request_id)
    assert [frame.split("\n")[0].rsplit(" ", 1)[1] for frame in error["stackTrace"]] == ["handler", "fail"]
    assert "app.py" in error["stackTrace"][0]
    assert "[ERROR] ValueError: bad value 42\rTraceback (most recent call last):\r" in result.log
    assert runtime.errors()[-1] == ("boom", result)
    assert runtime.invoke(spec, b'{"v": 1}').function_error == "Unhandled"  # the environment survives


def test_timeout_kills_the_worker_and_the_next_call_gets_a_new_one(runtime):
    spec = make_spec("""
        import os, time
        def handler(event, context):
            print("before sleep")
            if event["sleep"]:
                time.sleep(30)
            return os.getpid()
    """, timeout_s=0.3)
    first_pid = json.loads(runtime.invoke(spec, b'{"sleep": false}').payload)

    result = runtime.invoke(spec, b'{"sleep": true}')

    error = json.loads(result.payload)
    assert result.function_error == "Unhandled" and error["errorType"] == "Sandbox.Timedout"
    assert error["errorMessage"] == f"RequestId: {result.request_id} Error: Task timed out after 0.30 seconds"
    assert 300 <= result.duration_ms < 3000
    assert "before sleep\n" in result.log
    assert re.search(rf"Z {result.request_id} Task timed out after 0\.30 seconds\nEND RequestId", result.log)
    assert result.log.rstrip("\n").endswith("Status: timeout\t")
    assert is_gone(first_pid)
    recovered = runtime.invoke(spec, b'{"sleep": false}')
    assert recovered.function_error is None and json.loads(recovered.payload) != first_pid


@pytest.mark.parametrize("source, handler, error_type, message", [
    ("import not_a_module_xyz\n", "app.handler", "Runtime.ImportModuleError",
     "Unable to import module 'app': No module named 'not_a_module_xyz'"),
    ("def other(event, context): pass\n", "app.handler", "Runtime.HandlerNotFound",
     "Handler 'handler' missing on module 'app'"),
    ("def handler(event, context) pass\n", "app.handler", "Runtime.UserCodeSyntaxError",
     "Syntax error in module 'app': expected ':' (app.py, line 1)"),
    ("raise RuntimeError('no config')\n", "app.handler", "RuntimeError", "no config"),
    ("def handler(event, context): pass\n", "handler", "Runtime.MalformedHandlerName",
     "Bad handler 'handler': not enough values to unpack (expected 2, got 1)"),
])
def test_init_errors_have_the_aws_shape_and_init_runs_again(runtime, source, handler, error_type, message):
    spec = make_spec(source, handler=handler)

    result = runtime.invoke(spec, b"{}")

    error = json.loads(result.payload)
    assert result.function_error == "Unhandled"
    assert (error["errorType"], error["errorMessage"], error["requestId"]) == (error_type, message, "")
    assert f"[ERROR] {error_type}: {message}" in result.log
    assert f"Status: error\tError Type: {error_type}" in result.log
    assert runtime.invoke(spec, b"{}").log.startswith("INIT_START")


def test_environment_is_the_functions_and_nothing_of_the_parents(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_PROFILE", "parent-profile")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "parent-secret")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", "http://parent.invalid")
    monkeypatch.setenv("PYTHONPATH", "/parent/site")
    monkeypatch.setenv("GAMEDAY_PARENT_ONLY", "1")
    spec = make_spec("""
        import os, sys
        def handler(event, context):
            return {"env": dict(os.environ), "cwd": os.getcwd(), "path0": sys.path[0]}
    """, environment={"TABLE": "inventory", "AWS_ENDPOINT_URL": "http://elsewhere.invalid"})

    with LambdaRuntime("http://127.0.0.1:4566", work_dir=tmp_path) as runtime:
        body = json.loads(runtime.invoke(spec, b"{}").payload)

    env = body["env"]
    assert env["TABLE"] == "inventory"
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4566"
    assert {k: env[k] for k in CREDENTIALS} == CREDENTIALS
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert (env["AWS_LAMBDA_FUNCTION_NAME"], env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]) == ("fn", "256")
    assert (env["AWS_LAMBDA_FUNCTION_VERSION"], env["AWS_LAMBDA_LOG_GROUP_NAME"]) == ("$LATEST", "/aws/lambda/fn")
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.11" and env["AWS_LAMBDA_LOG_STREAM_NAME"]
    assert env["LAMBDA_TASK_ROOT"] == body["cwd"] == body["path0"]
    assert "PATH" in env
    leaked = {"AWS_PROFILE", "AWS_ENDPOINT_URL_SQS", "AWS_CA_BUNDLE", "GAMEDAY_PARENT_ONLY"} & env.keys()
    assert not leaked
    assert "/parent/site" not in env.get("PYTHONPATH", "")


def test_module_state_persists_while_warm_and_resets_with_new_code(runtime):
    source = """
        import os
        count = 0
        def handler(event, context):
            global count
            count += 1
            return [count, os.getpid()]
    """
    spec = make_spec(source)
    warm = [json.loads(runtime.invoke(spec, b"{}").payload) for _ in range(3)]
    assert [count for count, _ in warm] == [1, 2, 3]
    assert len({pid for _, pid in warm}) == 1

    updated = make_spec(textwrap.dedent(source) + "# v2\n")
    assert updated.code_sha256 != spec.code_sha256
    count, pid = json.loads(runtime.invoke(updated, b"{}").payload)

    assert count == 1 and pid != warm[0][1]
    assert is_gone(warm[0][1])


def test_concurrent_invocations_are_capped_per_function(tmp_path):
    spec = make_spec("""
        import os, time
        def handler(event, context):
            time.sleep(0.2)
            return os.getpid()
    """)
    with LambdaRuntime("http://127.0.0.1:9", max_workers_per_function=2, work_dir=tmp_path) as runtime:
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda _: runtime.invoke(spec, b"{}"), range(4)))

    assert all(r.function_error is None for r in results)
    assert len({json.loads(r.payload) for r in results}) == 2


def test_invoke_async_retries_a_failing_handler_exactly_max_retries_times(runtime, logs, tmp_path):
    attempts = tmp_path / "attempts.txt"
    failing = make_spec("""
        import os
        def handler(event, context):
            with open(os.environ["ATTEMPTS"], "a") as f:
                f.write(context.aws_request_id + "\\n")
            raise RuntimeError("always fails")
    """, name="failing", environment={"ATTEMPTS": str(attempts)})
    succeeding = make_spec("""
        import os
        def handler(event, context):
            with open(os.environ["ATTEMPTS"], "a") as f:
                f.write("ok\\n")
    """, name="succeeding", environment={"ATTEMPTS": str(tmp_path / "ok.txt")})

    runtime.invoke_async(failing, b"{}", max_retries=2)
    runtime.invoke_async(succeeding, b"{}")
    assert runtime.join(timeout=10)

    failed = [r for name, _, r in logs.records if name == "failing"]
    assert len(attempts.read_text().splitlines()) == len(failed) == 3
    assert {(r.status, r.function_error) for r in failed} == {(202, "Unhandled")}
    assert len({r.request_id for r in failed}) == 1  # AWS retries an event under its request id
    assert (tmp_path / "ok.txt").read_text() == "ok\n"
    assert [r.function_error for name, _, r in logs.records if name == "succeeding"] == [None]


def test_handler_boto3_calls_reach_the_embedded_endpoint(tmp_path, moto_url):
    spec = make_spec("""
        import boto3
        sqs = boto3.client("sqs")
        def handler(event, context):
            return sqs.create_queue(QueueName=event["queue"])["QueueUrl"]
    """, timeout_s=10)

    with LambdaRuntime(moto_url, work_dir=tmp_path) as runtime:
        result = runtime.invoke(spec, b'{"queue": "made-by-lambda"}')

    assert result.function_error is None, result.payload
    sqs = boto3.client("sqs", endpoint_url=moto_url, region_name="eu-west-1", aws_access_key_id="testing",
                       aws_secret_access_key="testing")
    assert json.loads(result.payload) in sqs.list_queues(QueueNamePrefix="made-by-lambda")["QueueUrls"]


def test_prewarmed_worker_serves_the_first_invocation(runtime, tmp_path):
    marker = tmp_path / "imported"
    spec = make_spec("""
        import os
        open(os.environ["MARKER"], "w").close()
        def handler(event, context):
            return os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"]
    """, environment={"MARKER": str(marker)})

    runtime.prewarm(spec)
    # Ready, not just imported: the module runs before the worker is handed to the pool (a loaded CI saw the gap).
    assert runtime.wait_warm(timeout=30), "the prewarmed worker did not become ready"
    assert marker.exists()
    result = runtime.invoke(spec, b"{}")

    assert json.loads(result.payload) == "provisioned-concurrency"
    assert "Init Duration" not in result.log


def test_non_python_runtimes_and_bad_payloads_are_refused(runtime):
    node = make_spec("exports.handler = async () => 1;", runtime="nodejs20.x")
    for call in (lambda: runtime.invoke(node, b"{}"), lambda: runtime.invoke_async(node, b"{}"),
                 lambda: runtime.prewarm(node)):
        with pytest.raises(UnsupportedRuntime, match=r"runtime 'nodejs20.x' is not supported") as refused:
            call()
        assert "\n" not in str(refused.value)
    with pytest.raises(InvalidRequestContent):
        runtime.invoke(make_spec("def handler(e, c): pass\n"), b"not json")


def test_close_stops_workers_removes_files_and_is_idempotent(tmp_path):
    spec = make_spec("import os\ndef handler(event, context):\n    return os.getpid()\n")
    runtime = LambdaRuntime("http://127.0.0.1:9", work_dir=tmp_path)
    pid = json.loads(runtime.invoke(spec, b"{}").payload)

    runtime.close()
    runtime.close()

    assert is_gone(pid)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeClosed):
        runtime.invoke(spec, b"{}")


ORPHAN_PARENT = """
import io, json, sys, zipfile
from harness.emulator.lambdas import FunctionSpec, LambdaRuntime
work_dir, pid_file = sys.argv[1:]
source = (
    "import os, time\\n"
    "def handler(event, context):\\n"
    "    if event.get('hang'):\\n"
    "        with open(event['pid_file'], 'w') as f:\\n"
    "            f.write(str(os.getpid()))\\n"
    "        time.sleep(60)\\n"
    "    return os.getpid()\\n"
)
buffer = io.BytesIO()
with zipfile.ZipFile(buffer, "w") as archive:
    archive.writestr("app.py", source)
spec = FunctionSpec("orphan", "arn:aws:lambda:us-east-1:123456789012:function:orphan", "app.handler", "python3.11",
                    buffer.getvalue(), "sha", {}, 60.0, 128, {}, "us-east-1")
runtime = LambdaRuntime("http://127.0.0.1:9", work_dir=work_dir)
print(runtime.invoke(spec, b"{}").payload.decode(), flush=True)
runtime.invoke(spec, json.dumps({"hang": True, "pid_file": pid_file}).encode())
"""


def test_workers_exit_when_the_parent_is_killed(tmp_path):
    pid_file = tmp_path / "busy.pid"
    parent = subprocess.Popen([sys.executable, "-c", ORPHAN_PARENT, str(tmp_path), str(pid_file)],
                              stdout=subprocess.PIPE, text=True)
    try:
        idle_pid = int(parent.stdout.readline())
        eventually(lambda: assert_written(pid_file))
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()
    busy_pid = int(pid_file.read_text())

    eventually(lambda: (assert_gone(idle_pid), assert_gone(busy_pid)))


def assert_written(path):
    assert path.exists() and path.read_text(), path


def assert_gone(pid):
    assert is_gone(pid), f"worker {pid} outlived its parent"
