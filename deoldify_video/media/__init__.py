"""ffmpeg-facing code: probing, frame reading and writing, muxing, fetching URLs. No torch."""
