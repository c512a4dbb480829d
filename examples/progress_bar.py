"""Follow a long run with a progress bar of one's own.

    python examples/progress_bar.py examples/bigbuckbunny_bw.mp4 -o bunny_colour.mp4

Every long operation of the library (colorizing, downloads, training, evaluation) reports
``ProgressEvent``s to a callback: ``stage`` (what is being done), ``done`` and ``total``
(frames, bytes, steps; ``total`` may be None) and a ``message``. This one draws a text bar on
stderr. An exception raised in the callback stops the run: ``--stop-after N`` stops after N
frames, and the same command without it takes the job up again from its last finished segment
(segments are 10 s of film by default).
"""

from __future__ import annotations

import argparse
import sys
import time

from deoldify_video import ProgressEvent, colorize_video, load_colorizer

WIDTH = 30


class Stopped(Exception):
    """Raised in the callback to stop the run."""


class TextBar:
    """Draws ``stage [#####.....] 45%  120/264  6.1/s  ETA 0:22`` for each ProgressEvent.

    The rate counts only this run's work: after a resume, the first event's ``done`` is the
    work an earlier run did.
    """

    def __init__(self, stop_after: int | None = None) -> None:
        self.stop_after = stop_after
        self.stage = ""
        self.start_done = 0
        self.start_time = 0.0

    def __call__(self, event: ProgressEvent) -> None:
        now = time.monotonic()
        if event.stage != self.stage:  # a new stage: a new line
            if self.stage:
                sys.stderr.write("\n")
            self.stage, self.start_done, self.start_time = event.stage, event.done, now
        sys.stderr.write("\r" + self.line(event, now))
        sys.stderr.flush()
        ran = event.done - self.start_done
        if self.stop_after is not None and event.stage == "colorize" and ran >= self.stop_after:
            raise Stopped(f"stopped after {ran} frames")

    def line(self, event: ProgressEvent, now: float) -> str:
        elapsed = now - self.start_time
        rate = (event.done - self.start_done) / elapsed if elapsed > 0 else 0.0
        text = f"{event.stage:9} {event.done}"
        if event.total:
            filled = WIDTH * event.done // event.total
            percent = 100 * event.done // event.total
            text = f"{event.stage:9} [{'#' * filled}{'.' * (WIDTH - filled)}] {percent:3d}%"
            text += f"  {event.done}/{event.total}"
            if rate > 0:
                eta = round((event.total - event.done) / rate)
                text += f"  {rate:.1f}/s  ETA {eta // 60}:{eta % 60:02d}"
        return text + (f"  {event.message}" if event.message else "")

    def close(self) -> None:
        if self.stage:
            sys.stderr.write("\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Colorize a film with a custom progress bar.")
    parser.add_argument("film")
    parser.add_argument("-o", "--output")
    parser.add_argument("--model", default="default", help="a model name or a weights file")
    parser.add_argument("--render-factor", type=int, help="model input size in units of 16 px")
    parser.add_argument("--stop-after", type=int, help="stop after this many frames")
    args = parser.parse_args(argv)
    colorizer = load_colorizer(args.model, render_factor=args.render_factor)
    bar = TextBar(args.stop_after)
    try:
        result = colorize_video(args.film, args.output, colorizer, progress=bar)
    except Stopped as exc:
        bar.close()
        print(f"{exc}; run the same command again to resume", file=sys.stderr)
        return 130
    bar.close()
    print(f"{result.output}: {result.frames} frames")
    return 0


if __name__ == "__main__":
    sys.exit(main())
