/* A small C program for Capsa's tests and demo: it links glibc and libm, reads the file named
 * by its first argument (if any), and reports what it sees, so a test can tell the sandboxed
 * program got its own libraries and the file it was given. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    printf("hello from capsa: sqrt(2)=%.6f\n", sqrt(2.0));
    if (argc > 1) {
        FILE *f = fopen(argv[1], "r");
        if (!f) {
            perror(argv[1]);
            return 3;
        }
        char buf[256] = {0};
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        printf("read %zu bytes from %s: %s\n", n, argv[1], buf);
    }
    const char *code = getenv("HELLO_EXIT");
    return code ? atoi(code) : 0;
}
