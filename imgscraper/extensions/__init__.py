"""Extensions (``EXTENSIONS``): they observe the crawl through signals and stats and never change what it does."""
