/*
 * The C reference for a genuine config read at 1 in flight: two processes on a socketpair, the
 * client sends a 24-byte request, the server answers each with one pread of the register (the
 * same path, offset and width the ring reads) in a 20-byte reply: what any userspace
 * transport around that pread costs at least on this machine. Built by bench/c-reference.ts with
 * the system compiler into a temporary directory.
 *
 * usage: c-reference CONFIG_PATH OFFSET SIZE RUN_MS RUNS
 * Prints "ready <server pid>" once the server runs, then per run "<ops> <seconds>".
 * Only reads: the config file is opened O_RDONLY.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { REQUEST_BYTES = 24, REPLY_BYTES = 20 };

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int exact(ssize_t (*io)(int, void *, size_t), int fd, void *buf, size_t len) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = io(fd, (char *)buf + done, len - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    done += (size_t)n;
  }
  return 0;
}

static ssize_t readFn(int fd, void *buf, size_t len) { return read(fd, buf, len); }
static ssize_t writeFn(int fd, void *buf, size_t len) { return write(fd, buf, len); }

static void serve(int sock, int config, off_t offset, size_t size) {
  unsigned char request[REQUEST_BYTES], reply[REPLY_BYTES];
  memset(reply, 0, sizeof reply);
  while (exact(readFn, sock, request, sizeof request) == 0) {
    if (pread(config, reply + 16, size, offset) != (ssize_t)size) _exit(1);
    if (exact(writeFn, sock, reply, sizeof reply) != 0) break;
  }
  _exit(0);
}

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: %s CONFIG_PATH OFFSET SIZE RUN_MS RUNS\n", argv[0]);
    return 2;
  }
  off_t offset = strtol(argv[2], NULL, 0);
  size_t size = strtoul(argv[3], NULL, 0);
  double runSeconds = strtod(argv[4], NULL) / 1000;
  int runs = atoi(argv[5]);
  if (size < 1 || size > 4 || runSeconds <= 0 || runs < 1) return 2;
  int config = open(argv[1], O_RDONLY | O_CLOEXEC);
  if (config < 0) {
    perror(argv[1]);
    return 1;
  }
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) return 1;
  pid_t server = fork();
  if (server < 0) return 1;
  if (server == 0) {
    close(pair[0]);
    serve(pair[1], config, offset, size);
  }
  close(pair[1]);
  printf("ready %d\n", (int)server);
  fflush(stdout);
  unsigned char request[REQUEST_BYTES], reply[REPLY_BYTES];
  memset(request, 0, sizeof request);
  /* Two warm-up runs, as the bench does for every figure, then the measured ones. */
  for (int run = -2; run < runs; run++) {
    long ops = 0;
    double start = now(), end = start + runSeconds, t = start;
    while (t < end) {
      for (int i = 0; i < 16; i++) {
        if (exact(writeFn, pair[0], request, sizeof request) != 0 || exact(readFn, pair[0], reply, sizeof reply) != 0) return 1;
      }
      ops += 16;
      t = now();
    }
    if (run >= 0) printf("%ld %.9f\n", ops, t - start);
    fflush(stdout);
  }
  close(pair[0]);
  waitpid(server, NULL, 0);
  return 0;
}
