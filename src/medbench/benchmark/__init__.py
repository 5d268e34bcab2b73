"""Running codecs over datasets: metrics, timing, the results store and the runner."""
