// The machine's limit for bench/run.sh: the least a server can do for `GET /` (hello world), in C, with epoll and one
// SO_REUSEPORT socket per process, one process per core. Its figure tells a quiet machine from a noisy one, and how
// far every mode is from what the hardware allows. It assumes each request arrives whole in one read, as wrk's do.
//   limit --port PORT --processes N
#define _GNU_SOURCE
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static const char keep[] = "HTTP/1.1 200 OK\r\nContent-Length: 11\r\nContent-Type: text/plain\r\n\r\nhello world";
static const char last[] = "HTTP/1.1 200 OK\r\nContent-Length: 11\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nhello world";

static int listener(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  struct sockaddr_in at = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(fd, (struct sockaddr *)&at, sizeof at) || listen(fd, 512)) exit(1);
  return fd;
}

static void serve(int port) {
  int lfd = listener(port), ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd}, events[256];
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  char buffer[4096];
  for (;;) {
    int n = epoll_wait(ep, events, 256, -1);
    for (int i = 0; i < n; i++) {
      int fd = events[i].data.fd;
      if (fd == lfd) {
        int c;
        while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
          int one = 1;
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
        }
        continue;
      }
      ssize_t got = read(fd, buffer, sizeof buffer - 1);
      if (got <= 0) {
        close(fd);
        continue;
      }
      buffer[got] = 0;
      int closing = strcasestr(buffer, "connection: close") != NULL;
      if (write(fd, closing ? last : keep, closing ? sizeof last - 1 : sizeof keep - 1) < 0 || closing) close(fd);
    }
  }
}

int main(int argc, char **argv) {
  if (argc != 5) return 2;
  int port = atoi(argv[2]), processes = atoi(argv[4]);
  signal(SIGPIPE, SIG_IGN);
  pid_t children[64];
  if (processes < 1 || processes > 64) return 2;
  for (int i = 0; i < processes; i++)
    if ((children[i] = fork()) == 0) serve(port);
  // SIGTERM to this one ends them all.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigprocmask(SIG_BLOCK, &set, NULL);
  int sig;
  sigwait(&set, &sig);
  for (int i = 0; i < processes; i++) kill(children[i], SIGTERM);
  while (wait(NULL) > 0) {
  }
  return 0;
}
