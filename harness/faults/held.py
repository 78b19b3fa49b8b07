"""The stack's functions held while a fault is applied (reserved concurrency 0), then put back as they were.

Lambda keeps the asynchronous events a throttled function receives and runs them once it may run again, as on AWS.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

IAM_ACTIONS = ("lambda:GetFunctionConcurrency", "lambda:PutFunctionConcurrency", "lambda:DeleteFunctionConcurrency")


def concurrency(aws: Any, functions: tuple[str, ...] | list[str]) -> dict[str, int | None]:
    """Each function's reserved concurrency (None: unreserved); a function the stack lacks (sabotaged) is left out."""
    lam = aws.client("lambda")
    found = {}
    for fn in functions:
        try:
            found[fn] = lam.get_function_concurrency(FunctionName=fn).get("ReservedConcurrentExecutions")
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
    return found


def hold(aws: Any, held: dict[str, int | None]) -> None:
    lam = aws.client("lambda")
    for fn in held:
        lam.put_function_concurrency(FunctionName=fn, ReservedConcurrentExecutions=0)


def release(aws: Any, held: dict[str, int | None]) -> None:
    """Put back what `concurrency` read; a function deleted meanwhile is no error."""
    lam = aws.client("lambda")
    for fn, reserved in held.items():
        try:
            if reserved is None:
                lam.delete_function_concurrency(FunctionName=fn)
            else:
                lam.put_function_concurrency(FunctionName=fn, ReservedConcurrentExecutions=reserved)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
