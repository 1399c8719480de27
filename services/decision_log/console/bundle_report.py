"""The report of a ready bundle (its ``report.html``), for a frame without scripts."""

from __future__ import annotations

import io
import zipfile
from collections.abc import AsyncIterator

from decision_log.problems import PayloadTooLarge

# Bundles larger than this are downloaded and read on the auditor's machine, not opened here.
MAX_OPENED_BYTES = 64 * 1024 * 1024
REPORT = "report.html"
# The report is the log's own HTML, but it describes producers' events: it runs nothing, loads
# nothing, and may be framed only by the console.
REPORT_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'self'; sandbox",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


async def report_html(chunks: AsyncIterator[bytes], *, size: int | None) -> bytes:
    if size is not None and size > MAX_OPENED_BYTES:
        raise PayloadTooLarge("this bundle is too large to open here; download it instead")
    data = bytearray()
    async for chunk in chunks:
        data += chunk
        if len(data) > MAX_OPENED_BYTES:
            raise PayloadTooLarge("this bundle is too large to open here; download it instead")
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        name = next((n for n in archive.namelist() if n.rsplit("/", 1)[-1] == REPORT), None)
        return archive.read(name) if name is not None else b"<p>This bundle has no report.</p>"
