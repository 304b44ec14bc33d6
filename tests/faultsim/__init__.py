# SPDX-License-Identifier: BSD-3-Clause
"""faultsim: the seeded, model-based fault simulation of swaptier.

tests/fault-sim.py is the entry point.  The package is split by concern:

  model.py   the shadow model: per page, the contents a read may return
             and whether an EIO is allowed (the checker's rules)
  report.py  violations and counters, printed as they happen and summed
  procs.py   the processes: remote nbdkit servers behind the error
             filter, swaptier itself, swaptierctl
  driver.py  client workers (one nbd handle each) issuing random
             requests on disjoint page ranges, each with a deadline
  faults.py  the seeded fault schedule and the backend population
"""
