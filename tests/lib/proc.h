/* proc.h - what the C test programs and benchmarks ask of the system: a
 * small file's bytes, and a process's resident memory, open descriptors
 * and threads (to tell that nothing grows). Header only: each program
 * includes it once. */
#ifndef KMS_TESTS_PROC_H
#define KMS_TESTS_PROC_H

#include <dirent.h>
#include <stddef.h>
#include <stdio.h>

/* Up to size bytes of path; 0 if it cannot be read. */
static inline size_t read_file(const char *path, unsigned char *buf, size_t size)
{
	FILE *f = fopen(path, "rb");
	size_t n;

	if (f == NULL)
		return 0;
	n = fread(buf, 1, size, f);
	fclose(f);
	return n;
}

/* VmRSS in kB from a /proc/PID/status file, or -1. */
static inline long rss_kb_of(const char *status)
{
	FILE *f = fopen(status, "r");
	char line[256];
	long kb = -1;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %ld", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* This process's VmRSS in kB, or -1. */
static inline long rss_kb(void)
{
	return rss_kb_of("/proc/self/status");
}

/* Entries of a /proc directory (not . and ..), or -1: /proc/PID/fd holds
 * a process's descriptors. */
static inline int proc_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* This process's open descriptors, or -1. */
static inline int open_fds(void)
{
	int n = proc_entries("/proc/self/fd");

	return n < 0 ? -1 : n - 1; /* the directory itself */
}

/* This process's threads, or -1. */
static inline int threads(void)
{
	return proc_entries("/proc/self/task");
}

#endif
