// Package clienttest runs real Kafka clients (franz-go, sarama, kafka-go,
// kcat, kafka-python, confluent-kafka) against a Tributary broker started by
// each test on 127.0.0.1 with a temporary data directory. It has only tests.
//
// Clients that are not Go modules are optional: their tests skip with a
// message when the tool is missing (`make tools` installs kcat,
// python3-kafka and python3-confluent-kafka from Debian).
package clienttest
