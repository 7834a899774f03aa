/*
 * check.h - the white-box tests' one assertion: CHECK counts every check
 * and prints each failure with its place, so a test runs to the end and
 * reports them all; check_summary() prints the "N passed, N failed" line
 * that the test runners read and returns main's exit status.
 */
#ifndef FOTA_TESTS_CHECK_H
#define FOTA_TESTS_CHECK_H

#include <stdio.h>

static int checks, failures;

#define CHECK(cond, what) \
	do { \
		checks++; \
		if (!(cond)) { \
			failures++; \
			printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, what); \
		} \
	} while (0)

static int check_summary(void)
{
	printf("%d passed, %d failed\n", checks - failures, failures);
	return failures != 0;
}

#endif
