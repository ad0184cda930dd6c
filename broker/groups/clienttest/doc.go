// Package clienttest holds the end-to-end tests of consumer groups: real
// Kafka clients (franz-go, kafka-go, sarama, kcat/librdkafka, kafka-python)
// against a Tributary broker started by each test on 127.0.0.1:0. They live
// apart from package groups so that its unit tests do not depend on the
// protocol server. Run them with `go test ./broker/groups/...`; -short skips
// them. Set TRIBUTARY_TEST_LOG=1 to see the broker's logs.
package clienttest
