"""Live inspection of a video stream: frame processor, overlay, triggers, writer (no Streamlit).

The page's video callback calls :meth:`FrameProcessor.process` and nothing else; the benchmark
(``bench/live.py``) and the tests drive the same processor with plain frames.
"""
