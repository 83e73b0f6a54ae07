-- MLflow's backend store, next to driftloop's state store (POSTGRES_DB)
CREATE DATABASE mlflow;
