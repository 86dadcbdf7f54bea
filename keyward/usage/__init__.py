"""Usage accounting: what each project used of each model's quota, from local reports and from
Cloud Monitoring, and what a refused call (a 429, an invalid key) means for publishing.

`accounting` is the service API; `reports` the report records and their JSON lines; `reporter` the
client side (daemon socket, else the database); `ingest` the daemon's socket server.
"""
