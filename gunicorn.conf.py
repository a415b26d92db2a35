"""gunicorn's settings for opsmap (read from the working directory): threaded workers, each
with enough threads that the change streams a process allows (OPSMAP_STREAMS_PER_PROCESS, 24)
never take the last thread /healthz and the pages need."""

worker_class = "gthread"
threads = 32
control_socket_disable = True
#: a restart does not wait for change streams: their pages reconnect by themselves (Last-Event-ID)
graceful_timeout = 5
