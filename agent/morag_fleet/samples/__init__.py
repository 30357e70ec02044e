"""One small, real sample per content type, generated locally, for the demo command.

Web and YouTube jobs carry a URL, so their samples are text files holding one; `serve_samples`
serves the sample directory on loopback so those URLs work offline (the web and youtube
converters then need `allow_private: true`, as loopback is refused by default).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

from morag_fleet.samples.generate import (
    article_page,
    encode_audio,
    speech_with_gaps,
    text_image,
    video_with_audio,
)

SHIPPED = Path(__file__).parent  # sample.pdf lives here (made once with reportlab)
SENTENCES = (
    "Welcome to the quarterly planning meeting of the garden project.",
    "We agreed to plant tomatoes and beans along the southern fence.",
    "The next meeting will take place on the first Monday of the month.",
)
IMAGE_LINES = (
    "Invoice number 48213",
    "Total amount: 1729 euros",
    "Thank you for shopping with Garden Supplies.",
)
ARTICLE_BLOCKS = (
    ("p", "Tomatoes need at least six hours of direct sunlight every day to ripen well."),
    ("h2", "Choosing a container"),
    ("p", "A container of twenty litres gives the roots enough room to spread out."),
    ("table", "<table><tr><th>Variety</th><th>Days to harvest</th></tr>"
              "<tr><td>Cherry</td><td>60</td></tr><tr><td>Roma</td><td>75</td></tr></table>"),
    ("p", "Water the plants in the morning so that the leaves dry before the evening."),
)


def make_samples(dest_dir: Path, base_url: str = "http://127.0.0.1:8765") -> dict[str, Path]:
    """Writes one sample per content type into `dest_dir`; web/youtube get URL files pointing
    at `base_url` (use `serve_samples(dest_dir)` to serve them)."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    speech = speech_with_gaps(SENTENCES, dest_dir / "speech.wav")
    audio = encode_audio(speech.path, dest_dir / "meeting.mp3")
    video = video_with_audio(audio, dest_dir / "meeting.mp4")
    document = dest_dir / "report.pdf"
    shutil.copyfile(SHIPPED / "sample.pdf", document)
    image = text_image(IMAGE_LINES, dest_dir / "invoice.png")
    (dest_dir / "article.html").write_text(
        article_page("Growing tomatoes on a balcony", "Jane Gardener", "2024-05-01",
                     ARTICLE_BLOCKS), encoding="utf-8")
    web = dest_dir / "web.url.txt"
    web.write_text(f"{base_url.rstrip('/')}/article.html\n", encoding="utf-8")
    youtube = dest_dir / "youtube.url.txt"
    youtube.write_text(f"{base_url.rstrip('/')}/meeting.mp3\n", encoding="utf-8")
    return {"audio": audio, "video": video, "document": document, "image": image,
            "web": web, "youtube": youtube}


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """The demo's output is the markdown, not an access log."""


@contextlib.contextmanager
def serve_samples(directory: Path, port: int = 0) -> Iterator[str]:
    """Serves `directory` on 127.0.0.1 in a thread; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
