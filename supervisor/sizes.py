"""The size rule at the supervisor's door (bus/payloads.py).

Clients and agents offload big payloads themselves; these checks hold the
rule for any sender that did not (an older client or agent, a Submit that was
offloaded whole by the transport), so a record never embeds a payload over
the inline threshold and a KV write never fails for size.
"""

from msgspec import structs

from natsfleet.bus.payloads import TOO_LARGE, Payloads, PayloadTooLarge
from natsfleet.protocols import NULL_RAW, ErrorInfo, Submit


def too_large(detail: str) -> ErrorInfo:
    return ErrorInfo(error_type=TOO_LARGE, detail=detail, retryable=False)


async def admitted(payloads: Payloads, submit: Submit) -> tuple[Submit, ErrorInfo | None]:
    """`submit` with its input inline or referenced by the rule, or why it is refused."""
    ref = submit.input_ref
    size = ref.size_bytes if ref is not None else len(submit.input)
    try:
        payloads.check("input", size)
    except PayloadTooLarge as exc:
        return structs.replace(submit, input=NULL_RAW, input_ref=None), too_large(str(exc))
    if submit.workflow is not None:
        # A run keeps its input in its state (KV WORKFLOWS): inline only.
        if ref is not None or size > payloads.inline_max_bytes:
            detail = (
                f"a workflow input of {size} bytes is over the "
                f"{payloads.inline_max_bytes}-byte inline limit"
            )
            return structs.replace(submit, input=NULL_RAW, input_ref=None), too_large(detail)
        return submit, None
    if ref is not None:
        # The reference wins; an inline input beside it is dropped, never stored.
        return structs.replace(submit, input=NULL_RAW), None
    raw, ref = await payloads.offload(submit.input, "input", submit.task_id)
    if ref is None:
        return submit, None
    return structs.replace(submit, input=raw, input_ref=ref), None
