"""HLS WebVTT subtitle renditions: each language's track as live subtitle segments on the video's timeline."""
