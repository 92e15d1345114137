"""The crawler as a service under Scrapyd: whether Scrapyd answers (:mod:`.service`) and
periodic crawls (:mod:`.schedule`, ``make scheduler``)."""
