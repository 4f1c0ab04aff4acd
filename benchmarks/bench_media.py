"""Image extraction from results: images/s and peak RSS, against decoding the same base64 in a tight loop.

A results file of 10,000 lines (``--quick``: 500), each a result of an image model with a text part
and one 100 KB image (``inlineData``, base64: about 133 KB a line, 1.3 GB in all), is generated in a
scratch folder. Ours: the file's bytes go, in 8 MiB chunks as a download brings them, through what
``GeminiBatchHook.write_results(media_destination=...)`` runs on them (``batch_results.ResultsFile``
into a ``ResultsWriter`` with a ``MediaExtractor``): every image decoded into a file of its own in a
folder, every line rewritten to point at it and written to the results file. The HTTP download and
the final renames are left out: ``benchmarks/bench_results.py`` measures downloads. The ceiling: the
same file read the same way, each line's base64 found and decoded with ``binascii.a2b_base64``, and
nothing written. Both run in a fresh interpreter from the page cache; everything is deleted after.

    .venv/bin/python benchmarks/bench_media.py            # 10,000 images
    .venv/bin/python benchmarks/bench_media.py --quick    # 500 images
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as harness

MiB = harness.MiB
IMAGE_BYTES = 100 * 1024
TARGET_RATIO = 0.5
TARGET_RSS_MIB = 200
_CHUNK = 8 * MiB


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="500 images instead of 10,000")
    parser.add_argument("--child", nargs=3, metavar=("KIND", "PATH", "COUNT"), help=argparse.SUPPRESS)
    return parser


def generate(path: Path, count: int) -> int:
    """Write ``count`` results lines, each with a text part and a distinct 100 KB PNG-headed image; return bytes."""
    seed = hashlib.sha256(b"bench-media").digest()
    pixels = (seed * (IMAGE_BYTES // len(seed) + 1))[: IMAGE_BYTES - 8]
    written = 0
    with path.open("wb", buffering=_CHUNK) as out:
        for number in range(count):
            image = b"\x89PNG\r\n\x1a\n" + number.to_bytes(8, "big") + pixels[8:]
            line = (
                f'{{"key":"img-{number:06d}","response":{{"candidates":[{{"content":{{"parts":['
                f'{{"text":"Here is picture {number}."}},'
                f'{{"inlineData":{{"mimeType":"image/png","data":"{base64.b64encode(image).decode()}"}}}}],'
                f'"role":"model"}},"finishReason":"STOP","index":0}}],"usageMetadata":{{"promptTokenCount":9,'
                f'"candidatesTokenCount":1290,"totalTokenCount":1299}},"modelVersion":"gemini-2.5-flash-image"}}}}\n'
            ).encode()
            out.write(line)
            written += len(line)
    return written


def _chunks(path: str) -> Iterator[bytes]:
    with open(path, "rb", buffering=0) as stream:
        yield from iter(lambda: stream.read(_CHUNK), b"")


def child(kind: str, path: str, count: int) -> None:
    """Run ``extract`` (ours) or ``decode`` (the ceiling) over ``path`` and report to the parent."""
    import binascii

    from airflow_provider_gemini_batch.batch_results import ResultsFile, ResultsWriter
    from airflow_provider_gemini_batch.batch_results.media import MediaExtractor

    folder = Path(path).parent / "images"
    folder.mkdir(exist_ok=True)
    images = decoded_bytes = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    if kind == "extract":

        def write_file(name: str, pieces: Iterator[bytes]) -> str:
            target = folder / name
            with open(target, "wb") as out:
                for piece in pieces:
                    out.write(piece)
            return str(target)

        media = MediaExtractor(write_file)
        with open(Path(path).parent / "results.jsonl", "wb") as out:
            writer = ResultsWriter(out, "generate", media=media)
            ResultsFile("files/batch-bench", count).write(_chunks(path), writer)
        images, decoded_bytes = media.file_count, media.byte_count
    else:
        a2b, rest = binascii.a2b_base64, b""
        for chunk in _chunks(path):
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            for line in lines:
                start = line.find(b'"data":"') + 8
                decoded_bytes += len(a2b(memoryview(line)[start : line.find(b'"', start)]))
                images += 1
    seconds = time.perf_counter() - started
    harness.report_to_parent(
        {
            "images": images,
            "decoded_bytes": decoded_bytes,
            "seconds": seconds,
            "cpu_seconds": time.process_time() - cpu_started,
            "peak_rss": harness.peak_rss_bytes(),
        }
    )


def _run(kind: str, path: Path, count: int, work: Path) -> dict[str, Any]:
    harness.progress(f"Media {kind}: {count:,} images ...")
    run = harness.run_child(
        harness.python_child(Path(__file__), kind, str(path), str(count)),
        env=harness.airflow_child_env(work / "home", "http://127.0.0.1:9", "unused"),
        cwd=harness.REPO_ROOT,
        timeout=3600,
    )
    return run.check()


def measure(*, quick: bool) -> list[harness.Row]:
    """Generate the results file, extract its images, decode them bare; return the table rows."""
    count = 500 if quick else 10_000
    with harness.scratch_dir("gemini-bench-media-") as work:
        source = work / "input.jsonl"
        harness.require_free_space(work, count * (IMAGE_BYTES * 3))
        harness.progress(f"Media: writing {count:,} results with a 100 KB image each ...")
        size = generate(source, count)
        ceilings = [_run("decode", source, count, work)]
        ours = _run("extract", source, count, work)
        ceilings.append(_run("decode", source, count, work))
        written = sorted((work / "images").iterdir())
        if len(written) != count or written[0].stat().st_size != IMAGE_BYTES:
            raise RuntimeError(f"Expected {count} images of {IMAGE_BYTES} bytes, found {len(written)}.")
    if ours["images"] != count or any(ceiling["images"] != count for ceiling in ceilings):
        raise RuntimeError(f"Expected {count} images: extracted {ours['images']}, ceilings {ceilings}.")
    rate = count / ours["seconds"]
    ceiling = max(count / run["seconds"] for run in ceilings)
    rss = ours["peak_rss"] / MiB
    return [
        harness.Row(
            "10 media",
            f"image extraction, {count:,} x 100 KB",
            "images/s",
            rate,
            ceiling=ceiling,
            target=f">= {TARGET_RATIO}x ceiling",
            met=rate >= TARGET_RATIO * ceiling,
            note=f"{size / MiB:.0f} MiB results file, {ours['decoded_bytes'] / MiB:.0f} MiB of images written as "
            f"{count:,} files in {ours['seconds']:.1f} s ({ours['cpu_seconds']:.1f} CPU s), "
            f"{size / MiB / ours['seconds']:.0f} MiB/s of results; ceiling: a2b_base64 of each line's base64, "
            f"nothing written, best of {[round(run['seconds'], 2) for run in ceilings]} s",
        ),
        harness.Row(
            "10 media",
            f"image extraction peak RSS, {count:,} x 100 KB",
            "MiB",
            rss,
            ceiling=max(run["peak_rss"] for run in ceilings) / MiB,
            target=f"< {TARGET_RSS_MIB} MiB",
            met=rss < TARGET_RSS_MIB,
            note="one 8 MiB chunk, its lines and one image's decoded chunk at a time: flat in images and their size",
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.child:
        kind, path, count = args.child
        child(kind, path, int(count))
        return 0
    harness.print_rows(measure(quick=args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
