/* Runs inside a container and plays the CVE-2019-5736 attacker: it watches
 * /proc for any process whose exe is not one of the image's own binaries
 * (those live under the prefix in argv[1]): that is the runtime, seen from
 * inside (its path may show as "/" when it runs from a mount of another
 * namespace). It keeps an O_PATH fd
 * to it, waits for that process to go away, then tries to reopen the binary
 * for writing. It never writes a byte. Prints one line:
 *   "caught <errno name>"  when it caught the binary and the reopen failed,
 *   "WRITABLE"             when the reopen succeeded (the defence failed),
 *   "missed"               when no runtime process showed up in time. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    const char *image_prefix = argc > 1 ? argv[1] : "/bin/";
    time_t end = time(NULL) + (argc > 2 ? atoi(argv[2]) : 20);
    while (time(NULL) < end) {
        DIR *d = opendir("/proc");
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
            char link[64], target[4096];
            snprintf(link, sizeof link, "/proc/%s/exe", e->d_name);
            ssize_t n = readlink(link, target, sizeof target - 1);
            if (n <= 0) continue;
            target[n] = 0;
            if (strncmp(target, image_prefix, strlen(image_prefix)) == 0) continue;
            int fd = open(link, O_PATH);
            if (fd < 0) continue;
            /* wait until the binary is no longer being executed */
            char self[64];
            snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
            for (int i = 0; i < 2000; i++) {
                int w = open(self, O_WRONLY);
                if (w >= 0) { printf("WRITABLE\n"); fflush(stdout); return 1; }
                if (errno != ETXTBSY) { printf("caught %s\n", strerrorname_np(errno)); fflush(stdout); return 0; }
                usleep(1000);
            }
            close(fd);
        }
        if (d) closedir(d);
    }
    printf("missed\n");
    return 2;
}
