"""kafka-python group consumer against a kbroker, driven by groups_clients_test.go.

Usage: group_consume.py BOOTSTRAP TOPIC GROUP COUNT

Joins GROUP subscribed to TOPIC (auto-commit off, earliest reset), reads
COUNT records, commits synchronously, and prints one JSON line: what it read,
its assignment, and the offsets the broker reports as committed. It then
stays in the group (heartbeating) until stdin closes, so the Go side can
describe the live group, and leaves with consumer.close(). Any exception
exits non-zero.
"""
import json
import select
import sys

from kafka import KafkaConsumer


def main():
    bootstrap, topic, group, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=[bootstrap],
        group_id=group,
        client_id="compat-kafka-python-group",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=30000,
        request_timeout_ms=30000,
        session_timeout_ms=10000,
        heartbeat_interval_ms=1000,
    )
    got = []
    for msg in consumer:
        got.append({"partition": msg.partition, "offset": msg.offset, "value": msg.value.decode()})
        if len(got) >= count:
            break
    consumer.commit()
    assignment = sorted(tp.partition for tp in consumer.assignment())
    committed = {str(tp.partition): consumer.committed(tp) for tp in consumer.assignment()}
    json.dump({"consumed": got, "assignment": assignment, "committed": committed}, sys.stdout)
    sys.stdout.write("\n")
    sys.stdout.flush()
    # Stay a live member until the test has looked at the group; poll so
    # the heartbeat thread keeps the session alive.
    while True:
        ready, _, _ = select.select([sys.stdin], [], [], 0.2)
        if ready and not sys.stdin.read(1):
            break
        consumer.poll(timeout_ms=100)
    consumer.close()


if __name__ == "__main__":
    main()
