/*
** bench.h -- timing helpers the benchmark programs share.
*/
#ifndef DBPOOL_BENCH_H
#define DBPOOL_BENCH_H

#include <stdlib.h>
#include <time.h>

static inline double now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static inline int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* The median of v[0..n-1] (sorts v). */
static inline double median(double *v, int n)
{
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return v[n / 2];
}

/* The q-quantile (0..1) of v[0..n-1], nearest rank (sorts v). */
static inline double quantile(double *v, int n, double q)
{
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return v[(int)(q * (n - 1) + 0.5)];
}

/* Median and interquartile range of v[0..n-1] (sorts v). */
typedef struct spread {
  double p25, p50, p75;
} spread;

static inline spread spread_of(double *v, int n)
{
  return (spread){quantile(v, n, 0.25), quantile(v, n, 0.5), quantile(v, n, 0.75)};
}

#endif
