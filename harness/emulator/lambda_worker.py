"""One Lambda execution environment: imports the handler once, then serves invocations from the runtime."""

# Started by harness.emulator.lambdas as `python -m harness.emulator.lambda_worker IN_FD OUT_FD`, with
# cwd = the extracted code, stdout/stderr = a capture file, and the protocol on two dedicated pipes:
# each message is one JSON header line, then `body` raw bytes (the event or the response).
# Kept to the standard library so a warm invoke costs little and a cold start only what the handler imports.

import decimal
import importlib
import io
import json
import logging
import os
import queue
import sys
import threading
import time
import traceback

_REQUEST_ID = ""


class _Fault(Exception):
    """A runtime-detected error with AWS's errorType (Runtime.ImportModuleError, ...)."""

    def __init__(self, error_type, message, trace=None):
        super().__init__(message)
        self.error_type, self.message, self.trace = error_type, message, trace or []


def _error(message, error_type, stack_trace, request_id=""):
    # Key order and the empty requestId of init errors are what the AWS Python runtime returns.
    return {"errorMessage": message or "", "errorType": error_type or "", "requestId": request_id,
            "stackTrace": stack_trace or []}


def _fault_from_exception(exc, request_id=""):
    frames = [(f.filename, f.lineno, f.name, f.line) for f in traceback.extract_tb(exc.__traceback__)]
    while frames and frames[0][0] == __file__:
        frames.pop(0)
    return _error(str(exc), type(exc).__name__, traceback.format_list(frames), request_id)


def _log_error(error):
    # AWS's runtime writes an unhandled error as one log event: lines joined by \r, indents as U+00A0.
    head = "[ERROR]"
    if error["errorType"]:
        head += " " + error["errorType"] + (":" if error["errorMessage"] else "")
    if error["errorMessage"]:
        head += " " + error["errorMessage"]
    lines = [head, "Traceback (most recent call last):"]
    for element in error["stackTrace"]:
        for line in element.splitlines() or [""]:
            stripped = line.lstrip(" ")
            lines.append("\u00a0" * (len(line) - len(stripped)) + stripped)
    sys.stdout.write("\r".join(lines) + "\n")


def _load_handler(handler):
    try:
        modname, fname = handler.rsplit(".", 1)
    except ValueError as e:
        raise _Fault("Runtime.MalformedHandlerName", f"Bad handler '{handler}': {e}") from None
    if modname.split(".")[0] in sys.builtin_module_names:
        raise _Fault("Runtime.BuiltInModuleConflict", f"Cannot use built-in module {modname} as a handler module")
    try:
        module = importlib.import_module(modname.replace("/", "."))
    except ImportError as e:
        raise _Fault("Runtime.ImportModuleError", f"Unable to import module '{modname}': {e}") from None
    except SyntaxError as e:
        trace = ['  File "%s" Line %s\n    %s' % (e.filename, e.lineno, e.text)]
        raise _Fault("Runtime.UserCodeSyntaxError", f"Syntax error in module '{modname}': {e}", trace) from None
    try:
        return getattr(module, fname)
    except AttributeError:
        raise _Fault("Runtime.HandlerNotFound", f"Handler '{fname}' missing on module '{modname}'") from None


class LambdaContext:
    """The `context` argument, with the attributes of the AWS Python runtime's LambdaContext."""

    def __init__(self, request_id, invoked_function_arn, deadline_epoch_ms):
        self.aws_request_id = request_id
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")  # a str, as on AWS
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.invoked_function_arn = invoked_function_arn
        self.client_context = None
        self.identity = None
        self._deadline_epoch_ms = deadline_epoch_ms

    def get_remaining_time_in_millis(self):
        return max(0, self._deadline_epoch_ms - int(time.time() * 1000))

    def log(self, msg):
        sys.stdout.write(str(msg))


class _LambdaLoggerHandler(logging.Handler):
    def emit(self, record):
        sys.stdout.write(self.format(record))


class _RequestIdFilter(logging.Filter):
    def filter(self, record):
        record.aws_request_id = _REQUEST_ID
        return True


def _setup_logging():
    logging.Formatter.converter = time.gmtime
    handler = _LambdaLoggerHandler()
    handler.setFormatter(logging.Formatter(
        "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n", "%Y-%m-%dT%H:%M:%S"))
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    level = os.environ.get("AWS_LAMBDA_LOG_LEVEL", "").upper()
    if level in logging.getLevelNamesMapping():
        root.setLevel(level)
    root.addHandler(handler)  # the root level stays WARNING unless set, as on AWS


def _json_default(obj):
    if isinstance(obj, decimal.Decimal):
        return int(obj) if obj == obj.to_integral_value() else float(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _marshal(result):
    if isinstance(result, bytes):
        return result
    try:
        ensure_ascii = os.environ.get("AWS_EXECUTION_ENV") != "AWS_Lambda_python3.12"
        return json.dumps(result, default=_json_default, ensure_ascii=ensure_ascii).encode()
    except (TypeError, ValueError) as e:
        raise _Fault("Runtime.MarshalError", f"Unable to marshal response: {e}") from None


class _Unbuffered(io.TextIOWrapper):
    """A text stream on fd 1/2 that flushes every write, so output printed before a timeout kill is kept."""

    def __init__(self, fd):
        super().__init__(open(fd, "wb", closefd=False), encoding="utf-8", errors="backslashreplace")

    def write(self, s):
        n = super().write(s)
        self.flush()
        return n


def _drain_capture():
    """The handler's output since the last drain: fds 1 and 2 share one O_APPEND capture file."""
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except Exception:
            pass
    size = os.fstat(1).st_size
    if not size:
        return ""
    data = os.pread(1, size, 0)
    os.ftruncate(1, 0)
    return data.decode("utf-8", "replace")


def _max_rss_mb():
    try:
        import resource
    except ImportError:
        return 0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss // (1024 * 1024) if sys.platform == "darwin" else rss // 1024


def _send(out_fd, header, body=b""):
    header["body"] = len(body)
    view = memoryview(json.dumps(header).encode() + b"\n" + body)
    while view:
        view = view[os.write(out_fd, view):]


def _read_requests(in_fd, inbox):
    stream = os.fdopen(in_fd, "rb")
    while True:
        line = stream.readline()
        if not line:
            os._exit(0)  # the runtime closed the pipe or died: no orphan outlives it, even mid-invocation
        header = json.loads(line)
        inbox.put((header, stream.read(header["body"]) if header["body"] else b""))


def _isolate_sys_path(task_root):
    # PYTHONPATH pointed at the harness only so `-m` could find this module; the handler sees /var/task first.
    harness_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.path[:] = [p for p in sys.path if p and os.path.abspath(p) not in (harness_root, task_root)]
    sys.path.insert(0, task_root)
    for name in [m for m in sys.modules if m == "harness" or m.startswith("harness.")]:
        del sys.modules[name]


def _invoke(request_handler, header, body):
    global _REQUEST_ID
    _REQUEST_ID = request_id = header["request_id"]
    error = None
    try:
        context = LambdaContext(request_id, header["arn"], int(time.time() * 1000) + header["timeout_ms"])
        try:
            event = json.loads(body) if body else {}
        except ValueError as e:
            raise _Fault("Runtime.UnmarshalError", f"Unable to unmarshal input: {e}") from None
        response = _marshal(request_handler(event, context))
    except _Fault as e:
        error = _error(e.message, e.error_type, e.trace, request_id)
    except Exception as e:
        error = _fault_from_exception(e, request_id)
    if error is not None:
        _log_error(error)
        response = json.dumps(error).encode()
    return {"op": "result", "ok": error is None, "log": _drain_capture(), "max_rss_mb": _max_rss_mb()}, response


def main(argv):
    in_fd, out_fd = int(argv[1]), int(argv[2])
    for fd in (in_fd, out_fd):
        os.set_inheritable(fd, False)  # a subprocess of the handler must not hold the protocol pipes open
    task_root = os.environ.get("LAMBDA_TASK_ROOT", os.getcwd())
    _isolate_sys_path(task_root)
    sys.stdout, sys.stderr = _Unbuffered(1), _Unbuffered(2)
    _setup_logging()

    request_handler, init_error = None, None
    try:
        request_handler = _load_handler(os.environ["_HANDLER"])
    except _Fault as e:
        init_error = _error(e.message, e.error_type, e.trace)
    except Exception as e:
        init_error = _fault_from_exception(e)
    if init_error is not None:
        _log_error(init_error)
    _send(out_fd, {"op": "ready", "init_error": init_error, "log": _drain_capture(), "max_rss_mb": _max_rss_mb()})

    inbox = queue.SimpleQueue()
    threading.Thread(target=_read_requests, args=(in_fd, inbox), daemon=True, name="lambda-worker-ipc").start()
    while True:
        header, body = inbox.get()
        if header["op"] != "invoke" or request_handler is None:
            return
        _send(out_fd, *_invoke(request_handler, header, body))


if __name__ == "__main__":
    main(sys.argv)
