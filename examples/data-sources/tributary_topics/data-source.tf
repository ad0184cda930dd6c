data "tributary_topics" "all" {
  cluster_id = "tc-0123456789abcdef"
}

output "topics_with_fewer_than_three_copies" {
  value = [for t in data.tributary_topics.all.topics : t.name if t.replication_factor < 3]
}
