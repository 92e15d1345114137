"""Scrapy settings for imgscraper.

Every setting the project adds is prefixed ``IMGSCRAPER_`` and has its only
default here; imgscraper/settingspec.py says what kind of value each takes, and
docs/settings.md describes each one (tests/test_docs.py checks it does).
"""

from imgscraper import __version__

BOT_NAME = "imgscraper"

SPIDER_MODULES = ["imgscraper.spiders"]
NEWSPIDER_MODULE = "imgscraper.spiders"
COMMANDS_MODULE = "imgscraper.commands"

# DEBUG logs a line per request and per item: CPU and log volume that grow
# with the site. -s LOG_LEVEL=DEBUG to see them.
LOG_LEVEL = "INFO"
# No telnet console nor remote control server per crawl: open ports nobody
# uses, and the remote control's aiohttp import alone costs 0.3 s per start.
TELNETCONSOLE_ENABLED = False
REMOTE_CONTROL_ENABLED = False
# The program and its version; IMGSCRAPER_CONTACT adds who runs the crawl (imgscraper/addons/useragent.py).
USER_AGENT = f"imgscraper/{__version__}"
ROBOTSTXT_OBEY = True

# Politeness and speed: see docs/settings.md.
# Stock Scrapy's downloader lets image requests overshoot both limits below.
DOWNLOADER = "imgscraper.downloader.LimitedDownloader"
CONCURRENT_REQUESTS = 16
CONCURRENT_REQUESTS_PER_DOMAIN = 8
# Images of one page in the pipeline at once. Each holds its request, its
# tasks and, once downloaded, its bytes: Scrapy's 100 grows memory with the
# site. Keep it about twice CONCURRENT_REQUESTS so the downloader never idles.
CONCURRENT_ITEMS = 32
DOWNLOAD_DELAY = 0
DOWNLOAD_TIMEOUT = 30
RETRY_ENABLED = True
RETRY_TIMES = 2
# The spider and the pipeline log each final failure in one line of their own.
RETRY_GIVE_UP_LOG_LEVEL = "DEBUG"
# Stock RetryMiddleware retries a 429/503 at once; this one waits as Retry-After asks.
DOWNLOADER_MIDDLEWARES = {
    "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
    "imgscraper.downloadermiddlewares.retryafter.RetryAfterMiddleware": 550,
    # Scrapy's, plus credentials for the start sites (IMGSCRAPER_HTTP_USER).
    "scrapy.downloadermiddlewares.httpauth.HttpAuthMiddleware": None,
    "imgscraper.downloadermiddlewares.httpauth.StartSitesHttpAuthMiddleware": 300,
    # After the redirect middleware (600): it sees where a start page ended up.
    "imgscraper.downloadermiddlewares.loginwall.LoginWallMiddleware": 580,
    # Scrapy's, its jar started from a cookies file (-a cookies=FILE).
    "scrapy.downloadermiddlewares.cookies.CookiesMiddleware": None,
    "imgscraper.downloadermiddlewares.cookiesfile.CookiesFileMiddleware": 700,
    # Closest to the download handler: it sees every attempt before the retry middleware.
    "imgscraper.downloadermiddlewares.unreachablehosts.UnreachableHostMiddleware": 950,
    # No fetch into private networks (IMGSCRAPER_ALLOW_PRIVATE_NETWORKS). After HttpProxyMiddleware, and
    # after UnreachableHostMiddleware: a refused address is reported as such, not counted as a dead host.
    "imgscraper.downloadermiddlewares.privatenetworks.PrivateNetworkMiddleware": 960,
    # render=yes: the browser's pages connect through the crawl, under the same policy (imgscraper/rendering/gateway.py).
    "imgscraper.downloadermiddlewares.browsergateway.BrowserGatewayMiddleware": 970,
}
# Scrapy's default resolver, refusing private addresses where connections are made (imgscraper/resolver.py).
TWISTED_DNS_RESOLVER = "imgscraper.resolver.GuardedResolver"
# Only http(s) and data: are fetched: no local files or FTP, whatever a page or redirect says.
DOWNLOAD_HANDLERS = {"file": None, "ftp": None}
DOWNLOAD_MAXSIZE = 100 * 1024 * 1024
DOWNLOAD_WARNSIZE = 32 * 1024 * 1024

# Checks every setting once, before anything is built (imgscraper/addons/settingscheck.py).
ADDONS = {
    "imgscraper.addons.settingscheck.SettingsCheck": 0,
    # IMGSCRAPER_REDIS_URL: one crawl shared by many workers (imgscraper/distributed/).
    "imgscraper.addons.distributed.DistributedCrawl": 10,
    # IMGSCRAPER_CONTACT in the User-Agent.
    "imgscraper.addons.useragent.ContactUserAgent": 20,
    # IMGSCRAPER_MAX_RATE: responses read at that pace (imgscraper/bandwidth.py).
    "imgscraper.addons.bandwidth.BandwidthLimit": 30,
}
EXTENSIONS = {
    "imgscraper.extensions.failurelines.OneLineRobotsErrors": 0,
    "imgscraper.extensions.failurelines.OneLinePerFailure": 0,
    "imgscraper.extensions.failurelines.FewLinesPerFailureHost": 0,
    "imgscraper.extensions.summary.CrawlSummary": 0,
    "imgscraper.extensions.progress.CrawlProgress": 0,
    "imgscraper.extensions.gallery.Gallery": 0,
    # IMGSCRAPER_MAX_IMAGES: N images stored, then the crawl stops.
    "imgscraper.extensions.imagelimit.ImageLimit": 0,
}
# imgscraper.extensions.progress logs a fuller stats line (IMGSCRAPER_PROGRESS_INTERVAL).
LOGSTATS_INTERVAL = 0
ITEM_PIPELINES = {"imgscraper.pipelines.images.ImageStorePipeline": 300}
IMAGES_STORE = "images"
# Days a stored image counts as fresh; IMGSCRAPER_EXPIRES, when set, takes precedence.
IMAGES_EXPIRES = 90
# Image URLs that redirect (CDNs, short links) are followed.
MEDIA_ALLOW_REDIRECTS = True
# Only 1x1 images count as too small by default (IMGSCRAPER_SKIP_TRACKING_PIXELS).
IMAGES_MIN_WIDTH = 0
IMAGES_MIN_HEIGHT = 0

FEED_EXPORT_ENCODING = "utf-8"
# Scrapy's production transport: its HTTP/1.1 download handler on the asyncio
# reactor, which sends every URL exactly as Request.url spells it (Scrapy's
# experimental reactorless aiohttp handler re-encodes them; the settings check refuses it).
TWISTED_REACTOR_ENABLED = True
TWISTED_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"

# --- imgscraper settings -------------------------------------------------
# Which srcset candidates to take: "largest" (one per srcset) or "all".
IMGSCRAPER_SRCSET = "largest"
# Fetch external style sheets (and their @imports) for the images they name.
IMGSCRAPER_STYLESHEETS = True
# Take the image file URLs quoted in inline scripts (galleries, page state, templates).
IMGSCRAPER_SCRIPT_IMAGES = True
# Request the full-size original of a thumbnail whose URL a rule rewrites (imgscraper/discovery/originals.py:
# WordPress, Photon, MediaWiki, Blogger, Medium, the Guardian, NYT, Shopify, Cloudinary, imgix, Squarespace);
# if the original fails, the URL the page named is stored instead. The spider argument -a originals=yes wins.
IMGSCRAPER_ORIGINALS = False
# Your own rewrite rules, tried before the built-in ones: regular expression -> replacement (re.sub's,
# \1 for a group), e.g. -s 'IMGSCRAPER_ORIGINALS_RULES={"-thumb(\\.jpg)$": "\\1"}'.
IMGSCRAPER_ORIGINALS_RULES = {}
# File names: "stable" (UUID derived from the image bytes, so re-crawls and
# aliases of one image share one file) or "random" (a new UUID4 per image).
IMGSCRAPER_FILE_NAMES = "stable"
# Where each image goes under IMAGES_STORE: a template of {uuid} or {sha256} (one is required), {ext},
# {name}, {host}, {page_host}, {page_path}, {page_title}, {alt}, {date} (imgscraper/pipelines/filepaths.py),
# e.g. "{page_host}/{page_path}/{name}-{uuid}{ext}". Each folder and name is made safe and cut to 255 bytes.
IMGSCRAPER_FILE_PATH = "full/{uuid}{ext}"
# A stored file's modification time: "server" (its Last-Modified, when the server sent one, as wget -N
# does) or "stored" (when it was written). A local store only: S3 keeps no such date.
IMGSCRAPER_FILE_TIMES = "server"
# Re-encode every image to JPEG like stock ImagesPipeline (off: bytes as served).
IMGSCRAPER_CONVERT_TO_JPEG = False
# Skip 1x1 images and SVGs that draw nothing (tracking pixels, lazy-load placeholders).
IMGSCRAPER_SKIP_TRACKING_PIXELS = True
# How long a stored image counts as fresh before it is revalidated with a
# conditional request: "30m", "12h", "7d", "2w", or a bare number of days.
# Empty: IMAGES_EXPIRES days.
IMGSCRAPER_EXPIRES = ""
# Connect to loopback, private (10/8, 172.16/12, 192.168/16, fc00::/7), link-local (169.254/16,
# fe80::/10) and unspecified addresses whatever the start URLs. Off: such an address is refused
# (reason blocked-address) unless a start URL is itself on that kind of network.
IMGSCRAPER_ALLOW_PRIVATE_NETWORKS = False
# Longest Retry-After (seconds) waited before a retry; a longer one fails the request.
IMGSCRAPER_RETRY_AFTER_MAX = 60
# Connection failures or timeouts in a row after which a host counts as down: its requests
# fail at once as host-unreachable until a probe gets an answer (imgscraper/downloadermiddlewares/unreachablehosts.py). 0: off.
IMGSCRAPER_HOST_FAILURES = 3
# Seconds a down host is left alone before one request probes it again.
IMGSCRAPER_HOST_COOLDOWN = 60.0
# WARNING lines per failure reason and host (image or page); the others are counted in one
# line at the end of the crawl ("... and 93 more http-404 from example.com"). 0: a line each.
IMGSCRAPER_FAILURE_LINES = 3
# Most pages one crawl requests (start pages included); 0: no limit. Bounds link traps.
IMGSCRAPER_MAX_PAGES = 0
# Images one crawl stores (downloaded, or up to date in the store; listed with -a download=no), then it
# stops with the finish reason max_images; 0: no limit. The spider argument -a max_images=N wins.
IMGSCRAPER_MAX_IMAGES = 0
# Filters (each also a spider argument, which wins: -a allow=... sets IMGSCRAPER_ALLOW; imgscraper/filters.py).
# Pages followed: regular expressions searched in each link's absolute URL ("": no filter; start pages always crawled).
IMGSCRAPER_ALLOW = ""
IMGSCRAPER_DENY = ""
# Images taken: regular expressions searched in each image's URL; a left-out image is never requested.
IMGSCRAPER_IMAGE_ALLOW = ""
IMGSCRAPER_IMAGE_DENY = ""
# Image formats kept, e.g. "jpeg,png,webp" ("": every format): from a Content-Type that names
# one (the body is then not transferred), and from the bytes.
IMGSCRAPER_FORMATS = ""
# Smallest and largest image kept, in bytes as served: 20000, "20k", "5M" (0: no limit). A
# Content-Length over the maximum stops the download at its headers.
IMGSCRAPER_MIN_BYTES = 0
IMGSCRAPER_MAX_BYTES = 0
# Live progress display on stderr when it is a terminal.
IMGSCRAPER_PROGRESS = True
# Seconds between progress lines in the log when stderr is not a terminal (0: none).
IMGSCRAPER_PROGRESS_INTERVAL = 60.0
# Bytes per second the crawl reads at most, e.g. "1M" or "500k" (k = 1024): responses are read at
# that pace (requests are not delayed). With IMGSCRAPER_WORKERS=N each process reads its Nth.
# Empty or 0: no limit.
IMGSCRAPER_MAX_RATE = ""
# Python's cyclic garbage collector: objects alive when the crawl starts are frozen and the
# first generation is collected every this many allocations (Python: 700); 0 leaves it alone.
# About 7% less CPU on the bench site, same peak memory (see docs/benchmarks.md).
IMGSCRAPER_GC_THRESHOLD = 20000
# Near-duplicates (resized or re-encoded copies of one picture): "off"; "mark" gives each stored
# image its perceptual hash (item and record field phash); "skip" also leaves unstored an image
# whose hash is close to an image of this crawl or store at the same aspect ratio and at least its
# size (status skipped, reason near-duplicate, path of the stored one).
IMGSCRAPER_NEAR_DUPLICATES = "off"
# Rebuild index.html, a gallery of everything a local IMAGES_STORE holds, after each crawl.
IMGSCRAPER_GALLERY = True

# Signed-in crawls: see docs/cookies.md.
# A cookies file (Netscape cookies.txt or cookie-editor JSON) whose cookies every request gets
# where they belong; the spider argument -a cookies=FILE wins. Empty: no cookies but the site's own.
IMGSCRAPER_COOKIES = ""
# Write the cookie jar back to that file when the crawl ends (atomically, in its own format).
IMGSCRAPER_COOKIES_SAVE = False
# HTTP basic authentication sent to the start sites' hosts only; each is also read from the
# environment variable of its name when empty (keep the password there, out of `ps`).
IMGSCRAPER_HTTP_USER = ""
IMGSCRAPER_HTTP_PASSWORD = ""
# Who runs the crawl, added to the User-Agent for site owners to write to: an e-mail address
# or an http(s) URL, e.g. "me@example.com" -> "imgscraper/0.1 (+mailto:me@example.com)".
IMGSCRAPER_CONTACT = ""

# Rendering (-a render=yes): see docs/rendering.md.
# The Chromium executable (Debian's chromium package; never a Playwright download).
IMGSCRAPER_RENDER_BROWSER = "/usr/bin/chromium"
# Pages open in the browser at once (per scheme: http and https each).
IMGSCRAPER_RENDER_MAX_PAGES = 4
# Viewport-high scroll steps per page (infinite scroll stops there).
IMGSCRAPER_RENDER_MAX_SCROLLS = 30
# At the bottom, a page that asks for nothing new for this long is done.
IMGSCRAPER_RENDER_SETTLE_MS = 500
# Seconds a page may take to scroll, click and settle after loading.
IMGSCRAPER_RENDER_TIMEOUT = 20
# Clicks per page on the element of -a click=CSS_SELECTOR ("load more").
IMGSCRAPER_RENDER_MAX_CLICKS = 20
# Browser requests aborted by resource type, and by (tracker) domain.
IMGSCRAPER_RENDER_BLOCK_RESOURCE_TYPES = ["font", "media", "texttrack", "manifest", "ping"]
IMGSCRAPER_RENDER_BLOCK_DOMAINS = [
    "google-analytics.com",
    "googletagmanager.com",
    "googlesyndication.com",
    "googleadservices.com",
    "doubleclick.net",
    "adservice.google.com",
    "connect.facebook.net",
    "facebook.com",
    "analytics.twitter.com",
    "ads-twitter.com",
    "bat.bing.com",
    "clarity.ms",
    "hotjar.com",
    "hotjar.io",
    "mixpanel.com",
    "segment.com",
    "segment.io",
    "amplitude.com",
    "heapanalytics.com",
    "fullstory.com",
    "newrelic.com",
    "nr-data.net",
    "quantserve.com",
    "scorecardresearch.com",
    "chartbeat.com",
    "criteo.com",
    "criteo.net",
    "taboola.com",
    "outbrain.com",
    "adnxs.com",
    "mc.yandex.ru",
]
# Let the browser download images too (by default it only records their URLs
# and Scrapy fetches each image once, within the crawl's limits).
IMGSCRAPER_RENDER_LOAD_IMAGES = False
# Worker processes of this crawl on this machine (scrapy crawl, make crawl WORKERS=N, Scrapyd jobs).
# Above 1 they share the crawl through Redis: IMGSCRAPER_REDIS_URL, or else a private
# redis-server started for the crawl (Debian's redis-server package). One feed, one summary.
IMGSCRAPER_WORKERS = 1
# Share the crawl with every worker using this Redis, e.g. "redis://host:6379/0"
# (scrapy-redis queue and duplicate filter, shared image claims). Empty: a crawl of its own.
IMGSCRAPER_REDIS_URL = ""
# The shared crawl to join. Empty: derived from the spider and its arguments,
# so the same command on every machine joins the same crawl.
IMGSCRAPER_CRAWL_ID = ""
# Seconds without a heartbeat after which a worker of a shared crawl counts as
# dead: its pages go back to the queue and its images may be taken over.
IMGSCRAPER_REDIS_WORKER_TIMEOUT = 30.0
# Set by the crawl command, not by hand (IMGSCRAPER_WORKERS, imgscraper/distributed/workers.py): on
# the lead, its worker id and the process ids of the local workers it forked; on each local
# worker, the id of the worker that leads it.
IMGSCRAPER_WORKER_ID = ""
IMGSCRAPER_LOCAL_WORKERS = []
IMGSCRAPER_LEAD_WORKER = ""
# Set by an add-on, not by hand: the spider yields each image URL once per crawl. The
# shared crawl's add-on turns it off: its spider middleware deduplicates across workers.
IMGSCRAPER_UNIQUE_IMAGES = True
# Set by an add-on, not by hand: the spider keeps IMGSCRAPER_MAX_PAGES. The shared crawl's add-on
# turns it off: its scheduler keeps the budget for the whole crawl.
IMGSCRAPER_SPIDER_PAGE_BUDGET = True
# Set by the crawl command, not by hand: False on a local worker, whose lead logs its failed
# images and pages with the crawl's own (one IMGSCRAPER_FAILURE_LINES rule for the crawl).
IMGSCRAPER_LOG_FAILURES = True
# Set by an add-on, not by hand: where IMGSCRAPER_NEAR_DUPLICATES=skip claims each stored image's
# place among near-duplicates (imgscraper.pipelines.nearduplicates.NearDuplicateClaimsProtocol): in this
# process; the shared crawl's add-on names claims in Redis, for every worker of the crawl.
IMGSCRAPER_NEAR_DUPLICATE_CLAIMS = "imgscraper.pipelines.nearduplicates.NearDuplicateClaims"
