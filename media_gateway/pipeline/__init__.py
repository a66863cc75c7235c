"""The speech pipeline seam: bus interface, in-process and Kafka buses, speech workers."""
