"""kafka-python round trip against a kbroker, driven by python_test.go.

Usage: roundtrip.py BOOTSTRAP TOPIC COUNT

Produces COUNT keyed records with headers and explicit timestamps to
partitions 0 and 1 of TOPIC (acks=all), once uncompressed and once with gzip,
then reads both partitions back from the beginning with a group-less
consumer. Prints one JSON object: what was acknowledged and what was read,
so the Go side compares them. Any exception exits non-zero.
"""
import json
import sys

from kafka import KafkaConsumer, KafkaProducer, TopicPartition


def produce(bootstrap, topic, count, compression):
    producer = KafkaProducer(
        bootstrap_servers=[bootstrap],
        acks="all",
        compression_type=compression,
        client_id="compat-kafka-python",
        request_timeout_ms=15000,
        max_block_ms=15000,
    )
    futures = []
    for i in range(count):
        part = i % 2
        key = ("%s-key-%d" % (compression or "none", i)).encode()
        value = ("%s-value-%d-%s" % (compression or "none", i, "p" * (i % 40))).encode()
        headers = [("n", str(i).encode()), ("codec", (compression or "none").encode())]
        fut = producer.send(topic, key=key, value=value, headers=headers,
                            partition=part, timestamp_ms=1600000000000 + i)
        futures.append((key, value, headers, fut))
    producer.flush(timeout=30)
    acked = []
    for key, value, headers, fut in futures:
        md = fut.get(timeout=30)
        acked.append({
            "partition": md.partition,
            "offset": md.offset,
            "key": key.decode(),
            "value": value.decode(),
            "headers": [[k, v.decode()] for k, v in headers],
            "timestamp": 1600000000000 + int(headers[0][1].decode()),
        })
    producer.close(timeout=10)
    return acked


def consume(bootstrap, topic, expected):
    consumer = KafkaConsumer(
        bootstrap_servers=[bootstrap],
        client_id="compat-kafka-python",
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=20000,
        request_timeout_ms=30000,
    )
    parts = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    got = []
    for msg in consumer:
        got.append({
            "partition": msg.partition,
            "offset": msg.offset,
            "key": msg.key.decode(),
            "value": msg.value.decode(),
            "headers": [[k, v.decode()] for k, v in msg.headers],
            "timestamp": msg.timestamp,
        })
        if len(got) >= expected:
            break
    consumer.close()
    return got


def main():
    bootstrap, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    acked = produce(bootstrap, topic, count, None)
    acked += produce(bootstrap, topic, count, "gzip")
    got = consume(bootstrap, topic, len(acked))
    json.dump({"acked": acked, "consumed": got}, sys.stdout)


if __name__ == "__main__":
    main()
