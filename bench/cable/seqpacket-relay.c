/*
 * The virtual cable's own ceiling: moves a TCP connection's bytes through a
 * SOCK_SEQPACKET socket pair with no mux at all, between two processes, the
 * way tsmuxd's host and a simulated phone sit on either end of a cable.
 *
 *   seqpacket-relay TARGET_PORT      prints "PORT\n" (its listening port on
 *                                    127.0.0.1), then serves until killed
 *
 * Each accepted connection gets its own pair of processes: the host side
 * pumps client <-> cable, the device side pumps cable <-> 127.0.0.1:TARGET_PORT.
 * Messages on the cable are at most 64 KiB, the cable's own limit.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MESSAGE_MAX 65536

static int write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    buf += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Copies both ways until either side ends; a zero-length read ends it. */
static void pump(int a, int b) {
  static char buf[MESSAGE_MAX];
  struct pollfd fds[2] = {{.fd = a, .events = POLLIN}, {.fd = b, .events = POLLIN}};
  for (;;) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    for (int i = 0; i < 2; i++) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = recv(fds[i].fd, buf, sizeof buf, 0);
      if (n <= 0) return;
      if (write_all(fds[1 - i].fd, buf, (size_t)n) < 0) return;
    }
  }
}

static int connect_target(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
    perror("seqpacket-relay: connect to target");
    exit(1);
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

static void serve(int client, int target_port) {
  int cable[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, cable) < 0) {
    perror("seqpacket-relay: socketpair");
    exit(1);
  }
  pid_t device = fork();
  if (device == 0) {
    close(client);
    close(cable[0]);
    int target = connect_target(target_port);
    pump(cable[1], target);
    exit(0);
  }
  close(cable[1]);
  pump(client, cable[0]);
  close(cable[0]);
  close(client);
  waitpid(device, NULL, 0);
  exit(0);
}

int main(int argc, char **argv) {
  if (argc != 2 || atoi(argv[1]) <= 0 || atoi(argv[1]) > 65535) {
    fprintf(stderr, "usage: seqpacket-relay TARGET_PORT\n");
    return 2;
  }
  int target_port = atoi(argv[1]);
  signal(SIGCHLD, SIG_IGN); /* handlers are reaped by the kernel */
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr = {.sin_family = AF_INET};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (listener < 0 || bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(listener, 256) < 0 ||
      getsockname(listener, (struct sockaddr *)&addr, &len) < 0) {
    perror("seqpacket-relay: listen");
    return 1;
  }
  printf("%d\n", ntohs(addr.sin_port));
  fflush(stdout);
  for (;;) {
    int client = accept(listener, NULL, NULL);
    if (client < 0) {
      if (errno == EINTR) continue;
      perror("seqpacket-relay: accept");
      return 1;
    }
    int one = 1;
    setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (fork() == 0) {
      close(listener);
      serve(client, target_port);
    }
    close(client);
  }
}
