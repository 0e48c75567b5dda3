"""What tests and benchmarks share and the product does not ship: throwaway PostgreSQL clusters,
real database faults, ganache nodes, synthetic traffic, minimal runbooks, webhook load, moto's S3
server, RabbitMQ vhosts and `runbook worker` processes."""
