"""The measurements dlmark makes, side by side: throughput, the largest batch, accuracy."""
