//! S-expression text form (parse + print). See  and .
