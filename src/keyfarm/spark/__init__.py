"""Spark engine (`keyfarm link --engine spark`): the linkage job's own stage functions, run per
partition by PySpark, for request logs that outgrow one machine. Needs `pip install 'keyfarm[spark]'`
and Java 17+; importing this package does not import PySpark.
"""
from keyfarm.spark.engine import link_spark, require_spark, run_link_spark, spark_session

__all__ = ["link_spark", "require_spark", "run_link_spark", "spark_session"]
