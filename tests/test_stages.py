"""The three stages of a segment (decode, model, encode): a slow stage is waited for."""

from __future__ import annotations

import time

from deoldify_video import pipeline
from deoldify_video.media.probe import probe
from deoldify_video.types import RenderConfig


def test_an_encoder_slower_than_the_model_is_waited_for(
    tmp_path, make_clip, tiny_colorizer, monkeypatch
):
    """When the model finishes first, the batches still queued for the encoder take more than
    a second to encode here: every one of them must still reach the output."""
    write = pipeline.FrameWriter.write

    def slow_write(self, luma, chroma):
        time.sleep(0.4)
        write(self, luma, chroma)

    monkeypatch.setattr(pipeline.FrameWriter, "write", slow_write)
    source = make_clip("basic.mp4")
    output = tmp_path / "out.mkv"
    pipeline.colorize_video(source, output, tiny_colorizer, RenderConfig(batch_size=4))
    assert probe(output).frame_count == probe(source).frame_count
