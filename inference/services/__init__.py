"""Domain services: each rule of the app lives in exactly one module here.

Views, admin, Celery jobs, the compatible endpoint and the CLI call these;
nothing in here imports the API, the admin or the compatible endpoint.
"""
