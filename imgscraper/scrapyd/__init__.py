"""The crawler as a service under Scrapyd: whether Scrapyd answers (:mod:`.service`), periodic
crawls (:mod:`.schedule`, ``make scheduler``) and the outcome of its jobs (:mod:`.jobs`, ``make jobs``)."""
