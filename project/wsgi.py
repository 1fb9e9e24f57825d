import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
application = get_wsgi_application()
# Import every view and API module now, while the process starts, rather than in the first request
# it serves (which otherwise took about half a second longer than the rest).
get_resolver().url_patterns
